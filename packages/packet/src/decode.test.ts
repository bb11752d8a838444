import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  buildEthernetFrame,
  buildIpPacket,
  buildIpv4Packet,
  buildTcpSegment,
  buildUdpDatagram,
} from "./build.js";
import { decodePacket } from "./decode.js";
import { isMalformedPacketError } from "./errors.js";
import { formatIpAddress } from "./ip-address.js";
import { parseIpAddress } from "./ip-address-parse.js";
import { EtherType, LinkType } from "./link-type.js";
import { TcpFlag } from "./tcp.js";

describe("decode", () => {
  it("decode - Ethernet / IPv6 / TCP down to the payload", () => {
    const src = parseIpAddress("2001:db8::1");
    const dst = parseIpAddress("2001:db8::2");
    const tcp = buildTcpSegment({
      sourceAddress: src,
      destinationAddress: dst,
      sourcePort: 50000,
      destinationPort: 443,
      sequenceNumber: 1000,
      flags: TcpFlag.Ack,
      payload: Uint8Array.of(9, 9),
    });
    const frame = buildEthernetFrame({
      etherType: EtherType.Ipv6,
      vlanTags: [{ vlanId: 5 }],
      payload: buildIpPacket(src, dst, 6, tcp),
    });
    const d = decodePacket(LinkType.Ethernet, frame);
    assert.equal(d.ip?.version, 6);
    assert.equal(formatIpAddress(d.ip.source), "2001:db8::1");
    assert.equal(d.ipProtocol, 6);
    assert.equal(d.fragment, false);
    assert.equal(d.transport?.protocol, "tcp");
    assert.equal(d.transport.segment.sequenceNumber, 1000);
    assert.deepEqual(d.transport.segment.payload, Uint8Array.of(9, 9));
  });

  it("decode - raw IPv4 / UDP", () => {
    const src = parseIpAddress("192.0.2.1");
    const dst = parseIpAddress("192.0.2.2");
    const udp = buildUdpDatagram({
      sourceAddress: src,
      destinationAddress: dst,
      sourcePort: 1,
      destinationPort: 2,
      payload: Uint8Array.of(7),
    });
    const d = decodePacket(LinkType.Raw, buildIpPacket(src, dst, 17, udp));
    assert.equal(d.transport?.protocol, "udp");
    assert.deepEqual(d.transport.datagram.payload, Uint8Array.of(7));
  });

  it("decode - fragments and other protocols carry no transport", () => {
    const src = parseIpAddress("192.0.2.1");
    const dst = parseIpAddress("192.0.2.2");
    const frag = decodePacket(
      LinkType.Raw,
      buildIpv4Packet({
        source: src,
        destination: dst,
        protocol: 6,
        payload: new Uint8Array(40),
        moreFragments: true,
      }),
    );
    assert.equal(frag.fragment, true);
    assert.equal(frag.transport, undefined);
    const icmp = decodePacket(
      LinkType.Raw,
      buildIpv4Packet({ source: src, destination: dst, protocol: 1, payload: new Uint8Array(8) }),
    );
    assert.equal(icmp.ipProtocol, 1);
    assert.equal(icmp.transport, undefined);
    const arp = decodePacket(
      LinkType.Ethernet,
      buildEthernetFrame({ etherType: EtherType.Arp, payload: new Uint8Array(28) }),
    );
    assert.equal(arp.ip, undefined);
  });

  it("decode - the first malformed layer throws", () => {
    const src = parseIpAddress("192.0.2.1");
    const bad = buildIpv4Packet({ source: src, destination: src, protocol: 6, payload: new Uint8Array(10) });
    assert.throws(
      () => decodePacket(LinkType.Raw, bad),
      (e: unknown) => isMalformedPacketError(e) && e.layer === "tcp",
    );
  });
});
