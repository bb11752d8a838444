import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildEthernetFrame } from "./build.js";
import { isMalformedPacketError, PacketErrorCode } from "./errors.js";
import { MAX_VLAN_TAGS, parseEthernet } from "./ethernet.js";
import { decodeLink } from "./link.js";
import { EtherType, LinkType, linkTypeName } from "./link-type.js";
import { parseLinuxSll2 } from "./linux-sll.js";
import { parseNullLoopback } from "./null-loopback.js";

const ipv4Start = Uint8Array.of(0x45, 0, 0, 20);
const ipv6Start = Uint8Array.of(0x60, 0, 0, 0);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => isMalformedPacketError(err) && err.code === code);
}

describe("link", () => {
  it("link - untagged Ethernet carrying IPv4", () => {
    const frame = buildEthernetFrame({ etherType: EtherType.Ipv4, payload: ipv4Start });
    const link = decodeLink(LinkType.Ethernet, frame);
    assert.equal(link.network, "ipv4");
    assert.equal(link.protocol, 0x0800);
    assert.deepEqual(link.vlanTags, []);
    assert.deepEqual(link.payload, ipv4Start);
    assert.equal(link.payload.buffer, frame.buffer, "payload is a view, not a copy");
  });

  it("link - 802.1Q and QinQ tags are walked outermost first", () => {
    const frame = buildEthernetFrame({
      etherType: EtherType.Ipv6,
      vlanTags: [{ vlanId: 100, tpid: EtherType.QinQ, priority: 5 }, { vlanId: 4094 }],
      payload: ipv6Start,
    });
    const eth = parseEthernet(frame);
    assert.deepEqual(eth.vlanTags, [
      { tpid: 0x88a8, priority: 5, dropEligible: false, vlanId: 100 },
      { tpid: 0x8100, priority: 0, dropEligible: false, vlanId: 4094 },
    ]);
    assert.equal(eth.etherType, 0x86dd);
    assert.equal(decodeLink(LinkType.Ethernet, frame).network, "ipv6");
  });

  it("link - too many or cut VLAN tags are errors", () => {
    const tags = Array.from({ length: MAX_VLAN_TAGS + 1 }, (_, i) => ({ vlanId: i }));
    assertCode(
      () =>
        parseEthernet(buildEthernetFrame({ etherType: EtherType.Ipv4, vlanTags: tags, payload: ipv4Start })),
      PacketErrorCode.TooManyHeaders,
    );
    const cut = buildEthernetFrame({
      etherType: EtherType.Ipv4,
      vlanTags: [{ vlanId: 1 }],
      payload: new Uint8Array(0),
    });
    assertCode(() => parseEthernet(cut.subarray(0, 16)), PacketErrorCode.Truncated);
    assertCode(() => parseEthernet(new Uint8Array(13)), PacketErrorCode.Truncated);
  });

  it("link - ARP over Ethernet is not IP", () => {
    const link = decodeLink(
      LinkType.Ethernet,
      buildEthernetFrame({ etherType: EtherType.Arp, payload: new Uint8Array(28) }),
    );
    assert.equal(link.network, undefined);
    assert.equal(link.protocol, EtherType.Arp);
  });

  it("link - raw IP link types tell the version by the first nibble", () => {
    assert.equal(decodeLink(LinkType.Raw, ipv4Start).network, "ipv4");
    assert.equal(decodeLink(LinkType.Raw, ipv6Start).network, "ipv6");
    assert.equal(decodeLink(LinkType.Raw, Uint8Array.of(0x50)).network, undefined);
    assert.equal(decodeLink(LinkType.Ipv4, ipv4Start).network, "ipv4");
    assert.equal(decodeLink(LinkType.Ipv4, ipv6Start).network, undefined);
    assert.equal(decodeLink(LinkType.Ipv6, ipv6Start).network, "ipv6");
    assertCode(() => decodeLink(LinkType.Raw, new Uint8Array(0)), PacketErrorCode.Truncated);
  });

  it("link - Linux cooked v1", () => {
    const header = Uint8Array.of(0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00);
    const link = decodeLink(LinkType.LinuxSll, concat(header, ipv4Start));
    assert.equal(link.network, "ipv4");
    assert.deepEqual(link.payload, ipv4Start);
    assertCode(() => decodeLink(LinkType.LinuxSll, header.subarray(0, 15)), PacketErrorCode.Truncated);
  });

  it("link - Linux cooked v2", () => {
    const header = Uint8Array.of(0x86, 0xdd, 0, 0, 0, 0, 0, 7, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0);
    const frame = parseLinuxSll2(concat(header, ipv6Start));
    assert.equal(frame.interfaceIndex, 7);
    assert.equal(frame.packetType, 4);
    assert.equal(frame.arphrdType, 1);
    assert.deepEqual(frame.address, Uint8Array.of(1, 2, 3, 4, 5, 6));
    assert.equal(decodeLink(LinkType.LinuxSll2, concat(header, ipv6Start)).network, "ipv6");
    assertCode(() => decodeLink(LinkType.LinuxSll2, header.subarray(0, 19)), PacketErrorCode.Truncated);
  });

  const families: { bytes: number[]; family: number; network: "ipv4" | "ipv6" | undefined }[] = [
    { bytes: [2, 0, 0, 0], family: 2, network: "ipv4" }, // little-endian host
    { bytes: [0, 0, 0, 2], family: 2, network: "ipv4" }, // big-endian host
    { bytes: [10, 0, 0, 0], family: 10, network: "ipv6" }, // Linux
    { bytes: [24, 0, 0, 0], family: 24, network: "ipv6" }, // NetBSD, OpenBSD
    { bytes: [0, 0, 0, 28], family: 28, network: "ipv6" }, // FreeBSD, big-endian
    { bytes: [30, 0, 0, 0], family: 30, network: "ipv6" }, // Darwin
    { bytes: [7, 0, 0, 0], family: 7, network: undefined },
  ];
  for (const c of families) {
    it(`link - NULL loopback family ${c.bytes.join(",")}`, () => {
      const frame = parseNullLoopback(concat(Uint8Array.from(c.bytes), ipv4Start));
      assert.equal(frame.family, c.family);
      assert.equal(frame.network, c.network);
      assert.equal(decodeLink(LinkType.Null, concat(Uint8Array.from(c.bytes), ipv4Start)).network, c.network);
    });
  }

  it("link - LOOP is big-endian", () => {
    assert.equal(decodeLink(LinkType.Loop, concat(Uint8Array.of(0, 0, 0, 24), ipv6Start)).network, "ipv6");
    assertCode(() => decodeLink(LinkType.Null, Uint8Array.of(2, 0, 0)), PacketErrorCode.Truncated);
  });

  it("link - unsupported link types are a typed error naming the type", () => {
    assert.throws(
      () => decodeLink(105, new Uint8Array(40)),
      (err: unknown) =>
        isMalformedPacketError(err) &&
        err.code === PacketErrorCode.UnsupportedLinkType &&
        err.message.includes("LINKTYPE_105"),
    );
    assert.equal(linkTypeName(LinkType.LinuxSll2), "LINUX_SLL2");
  });
});
