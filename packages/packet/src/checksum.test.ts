import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSum,
  transportChecksum,
  updateChecksum16,
  updateChecksum32,
} from "./checksum.js";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g)!.map((b) => Number.parseInt(b, 16)));
}

describe("checksum", () => {
  it("checksum - RFC 1071 section 3 example sums to 0xddf2", () => {
    assert.equal(onesComplementSum(hex("0001f203f4f5f6f7")), 0xddf2);
    assert.equal(internetChecksum(hex("0001f203f4f5f6f7")), 0x220d);
  });

  it("checksum - an IPv4 header with its checksum in place sums to zero", () => {
    // Header from a real capture: 192.168.0.1 -> 192.168.0.199, checksum 0xb861.
    const header = hex("450000730000400040110000c0a80001c0a800c7");
    assert.equal(internetChecksum(header), 0xb861);
    header[10] = 0xb8;
    header[11] = 0x61;
    assert.equal(internetChecksum(header), 0);
  });

  it("checksum - odd lengths pad the last byte on the right", () => {
    assert.equal(onesComplementSum(Uint8Array.of(0x12)), 0x1200);
    assert.equal(onesComplementSum(Uint8Array.of(0x12, 0x34, 0x56)), 0x1234 + 0x5600);
  });

  it("checksum - chained sums over even pieces equal one sum", () => {
    const data = Uint8Array.from({ length: 1001 }, (_, i) => (i * 37) & 0xff);
    const whole = onesComplementSum(data);
    const chained = onesComplementSum(data.subarray(500), onesComplementSum(data.subarray(0, 500)));
    assert.equal(chained, whole);
  });

  it("checksum - a long run of 0xffff words stays exact", () => {
    const data = new Uint8Array(1 << 20).fill(0xff);
    assert.equal(onesComplementSum(data), 0xffff);
  });

  it("checksum - incremental update equals recomputation", () => {
    const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 91 + 7) & 0xff);
    const before = internetChecksum(data);
    for (const [at, value] of [
      [0, 0x0000],
      [10, 0xffff],
      [30, 0x1234],
    ] as const) {
      const copy = data.slice();
      const old = (copy[at]! << 8) | copy[at + 1]!;
      copy[at] = value >> 8;
      copy[at + 1] = value & 0xff;
      assert.equal(updateChecksum16(before, old, value), internetChecksum(copy), `word at ${at}`);
    }
    const copy = data.slice();
    const view = new DataView(copy.buffer);
    const old32 = view.getUint32(12);
    view.setUint32(12, 0xc0a80a0b);
    assert.equal(updateChecksum32(before, old32, 0xc0a80a0b), internetChecksum(copy));
  });

  it("checksum - transport checksum verifies to zero and rejects mixed address sizes", () => {
    const src = Uint8Array.of(10, 0, 0, 1);
    const dst = Uint8Array.of(10, 0, 0, 2);
    const udp = hex("d43100350010000068656c6c6f212121");
    const sum = transportChecksum(src, dst, 17, udp);
    udp[6] = sum >> 8;
    udp[7] = sum & 0xff;
    assert.equal(transportChecksum(src, dst, 17, udp), 0);
    assert.throws(() => pseudoHeaderSum(src, new Uint8Array(16), 6, 20), RangeError);
  });
});
