import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildIpv6Packet } from "./build.js";
import { isMalformedPacketError, PacketErrorCode } from "./errors.js";
import { IpProtocol, isIpv6Fragment, MAX_IPV6_EXTENSION_HEADERS, parseIpv6 } from "./ipv6.js";

const src = Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x20 : i === 15 ? 1 : 0));
const dst = Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x20 : i === 15 ? 2 : 0));
const upper = Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An 8-byte Hop-by-Hop / Destination Options / Routing header (length field 0) with PadN. */
function ext8(next: number): Uint8Array {
  return Uint8Array.of(next, 0, 1, 4, 0, 0, 0, 0);
}

function fragmentHeader(next: number, offset: number, more: boolean): Uint8Array {
  const word = offset | (more ? 1 : 0);
  return Uint8Array.of(next, 0, word >> 8, word & 0xff, 0x12, 0x34, 0x56, 0x78);
}

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(
    fn,
    (err: unknown) => isMalformedPacketError(err) && err.layer === "ipv6" && err.code === code,
  );
}

describe("ipv6", () => {
  it("ipv6 - fixed header fields", () => {
    const p = parseIpv6(
      buildIpv6Packet({
        source: src,
        destination: dst,
        nextHeader: 6,
        payload: upper,
        hopLimit: 9,
        flowLabel: 0xabcde,
        trafficClass: 0x2e,
      }),
    );
    assert.equal(p.version, 6);
    assert.equal(p.trafficClass, 0x2e);
    assert.equal(p.flowLabel, 0xabcde);
    assert.equal(p.hopLimit, 9);
    assert.equal(p.protocol, 6);
    assert.deepEqual(p.extensionHeaders, []);
    assert.deepEqual(p.source, src);
    assert.deepEqual(p.payload, upper);
    assert.equal(p.fragment, undefined);
  });

  it("ipv6 - walks hop-by-hop, routing, destination options and AH", () => {
    const ah = Uint8Array.of(
      IpProtocol.Tcp,
      4,
      0,
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      11,
      12,
      13,
      14,
      15,
      16,
      17,
      18,
      19,
      20,
    ); // (4+2)*4 = 24
    const payload = concat(
      ext8(IpProtocol.Routing),
      ext8(IpProtocol.DestinationOptions),
      ext8(IpProtocol.Ah),
      ah,
      upper,
    );
    const p = parseIpv6(
      buildIpv6Packet({ source: src, destination: dst, nextHeader: IpProtocol.HopByHop, payload }),
    );
    assert.deepEqual(p.extensionHeaders, [0, 43, 60, 51]);
    assert.equal(p.protocol, IpProtocol.Tcp);
    assert.deepEqual(p.payload, upper);
  });

  it("ipv6 - first fragment walks on, later fragments stop at the fragment header", () => {
    const first = parseIpv6(
      buildIpv6Packet({
        source: src,
        destination: dst,
        nextHeader: 44,
        payload: concat(fragmentHeader(17, 0, true), upper),
      }),
    );
    assert.deepEqual(first.fragment, { offset: 0, moreFragments: true, identification: 0x12345678 });
    assert.equal(first.protocol, 17);
    assert.equal(isIpv6Fragment(first), true);
    const later = parseIpv6(
      buildIpv6Packet({
        source: src,
        destination: dst,
        nextHeader: 44,
        payload: concat(fragmentHeader(17, 1448, false), upper),
      }),
    );
    assert.equal(later.fragment?.offset, 1448);
    assert.equal(later.protocol, IpProtocol.Fragment);
    assert.deepEqual(later.payload, upper);
    assert.equal(isIpv6Fragment(later), true);
    // An atomic fragment (offset 0, no more fragments) is not a fragment of anything.
    const atomic = parseIpv6(
      buildIpv6Packet({
        source: src,
        destination: dst,
        nextHeader: 44,
        payload: concat(fragmentHeader(6, 0, false), upper),
      }),
    );
    assert.equal(isIpv6Fragment(atomic), false);
    assert.equal(atomic.protocol, 6);
  });

  it("ipv6 - ESP and No Next Header end the walk", () => {
    assert.equal(
      parseIpv6(buildIpv6Packet({ source: src, destination: dst, nextHeader: 50, payload: upper })).protocol,
      50,
    );
    assert.equal(
      parseIpv6(buildIpv6Packet({ source: src, destination: dst, nextHeader: 0, payload: ext8(59) }))
        .protocol,
      59,
    );
  });

  it("ipv6 - padding after the payload length is dropped, zero length runs to the end", () => {
    const bytes = buildIpv6Packet({ source: src, destination: dst, nextHeader: 17, payload: upper });
    assert.deepEqual(parseIpv6(concat(bytes, new Uint8Array(6))).payload, upper);
    const zero = bytes.slice();
    zero[4] = 0;
    zero[5] = 0;
    assert.deepEqual(parseIpv6(zero).payload, upper);
    const short = parseIpv6(bytes.subarray(0, 42));
    assert.equal(short.truncated, true);
    assert.deepEqual(short.payload, upper.subarray(0, 2));
  });

  it("ipv6 - malformed packets", () => {
    const good = buildIpv6Packet({ source: src, destination: dst, nextHeader: 6, payload: upper });
    assertCode(() => parseIpv6(good.subarray(0, 39)), PacketErrorCode.Truncated);
    const v4 = good.slice();
    v4[0] = 0x45;
    assertCode(() => parseIpv6(v4), PacketErrorCode.BadVersion);
    const cutExt = buildIpv6Packet({
      source: src,
      destination: dst,
      nextHeader: 0,
      payload: Uint8Array.of(6, 1, 0, 0, 0, 0, 0, 0),
    });
    assertCode(() => parseIpv6(cutExt), PacketErrorCode.Truncated); // says 16 bytes, has 8
    const noLength = buildIpv6Packet({
      source: src,
      destination: dst,
      nextHeader: 0,
      payload: Uint8Array.of(6),
    });
    assertCode(() => parseIpv6(noLength), PacketErrorCode.Truncated);
    const many = concat(...Array.from({ length: MAX_IPV6_EXTENSION_HEADERS + 1 }, () => ext8(60)), upper);
    assertCode(
      () => parseIpv6(buildIpv6Packet({ source: src, destination: dst, nextHeader: 60, payload: many })),
      PacketErrorCode.TooManyHeaders,
    );
  });
});
