import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildIpv4Packet } from "./build.js";
import { internetChecksum } from "./checksum.js";
import { isMalformedPacketError, PacketErrorCode } from "./errors.js";
import { isIpv4Fragment, parseIpv4 } from "./ipv4.js";

const src = Uint8Array.of(192, 0, 2, 1);
const dst = Uint8Array.of(198, 51, 100, 7);
const payload = Uint8Array.from({ length: 30 }, (_, i) => i);

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(
    fn,
    (err: unknown) => isMalformedPacketError(err) && err.layer === "ipv4" && err.code === code,
  );
}

describe("ipv4", () => {
  it("ipv4 - header fields, options and payload views", () => {
    const options = Uint8Array.of(0x94, 4, 0, 0); // Router Alert
    const bytes = buildIpv4Packet({
      source: src,
      destination: dst,
      protocol: 6,
      payload,
      options,
      ttl: 3,
      identification: 0xbeef,
      dontFragment: true,
    });
    assert.equal(internetChecksum(bytes.subarray(0, 24)), 0, "builder fills the header checksum");
    const p = parseIpv4(bytes);
    assert.equal(p.headerLength, 24);
    assert.equal(p.totalLength, 54);
    assert.equal(p.identification, 0xbeef);
    assert.equal(p.dontFragment, true);
    assert.equal(p.ttl, 3);
    assert.equal(p.protocol, 6);
    assert.deepEqual(p.source, src);
    assert.deepEqual(p.destination, dst);
    assert.deepEqual(p.options, options);
    assert.deepEqual(p.payload, payload);
    assert.equal(p.payload.buffer, bytes.buffer);
    assert.equal(p.truncated, false);
    assert.equal(isIpv4Fragment(p), false);
  });

  it("ipv4 - link-layer padding after total length is dropped", () => {
    const bytes = buildIpv4Packet({
      source: src,
      destination: dst,
      protocol: 6,
      payload: payload.subarray(0, 6),
    });
    const padded = new Uint8Array(bytes.length + 20);
    padded.set(bytes);
    padded.fill(0xee, bytes.length);
    assert.deepEqual(parseIpv4(padded).payload, payload.subarray(0, 6));
  });

  it("ipv4 - a zero total length (segmentation offload) runs to the end of the capture", () => {
    const bytes = buildIpv4Packet({ source: src, destination: dst, protocol: 6, payload });
    bytes[2] = 0;
    bytes[3] = 0;
    const p = parseIpv4(bytes);
    assert.equal(p.totalLength, 0);
    assert.deepEqual(p.payload, payload);
    assert.equal(p.truncated, false);
  });

  it("ipv4 - a short capture is flagged truncated and keeps the prefix", () => {
    const bytes = buildIpv4Packet({ source: src, destination: dst, protocol: 17, payload });
    const p = parseIpv4(bytes.subarray(0, 30));
    assert.equal(p.truncated, true);
    assert.deepEqual(p.payload, payload.subarray(0, 10));
  });

  it("ipv4 - fragments", () => {
    const first = parseIpv4(
      buildIpv4Packet({ source: src, destination: dst, protocol: 17, payload, moreFragments: true }),
    );
    assert.equal(first.moreFragments, true);
    assert.equal(first.fragmentOffset, 0);
    assert.equal(isIpv4Fragment(first), true);
    const later = parseIpv4(
      buildIpv4Packet({ source: src, destination: dst, protocol: 17, payload, fragmentOffset: 1480 }),
    );
    assert.equal(later.fragmentOffset, 1480);
    assert.equal(later.moreFragments, false);
    assert.equal(isIpv4Fragment(later), true);
  });

  it("ipv4 - malformed headers", () => {
    const good = buildIpv4Packet({ source: src, destination: dst, protocol: 6, payload });
    assertCode(() => parseIpv4(good.subarray(0, 19)), PacketErrorCode.Truncated);
    const v6 = good.slice();
    v6[0] = 0x65;
    assertCode(() => parseIpv4(v6), PacketErrorCode.BadVersion);
    const shortIhl = good.slice();
    shortIhl[0] = 0x44;
    assertCode(() => parseIpv4(shortIhl), PacketErrorCode.BadHeaderLength);
    const longIhl = good.slice(0, 30);
    longIhl[0] = 0x4f;
    assertCode(() => parseIpv4(longIhl), PacketErrorCode.Truncated);
    const badTotal = good.slice();
    badTotal[2] = 0;
    badTotal[3] = 10;
    assertCode(() => parseIpv4(badTotal), PacketErrorCode.BadLength);
  });
});
