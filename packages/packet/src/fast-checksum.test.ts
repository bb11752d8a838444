import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { onesComplementSum } from "./checksum.js";
import { fold32, sumRange } from "./fast-checksum.js";

describe("packet - fast checksum", () => {
  it("equals the reference sum for any bytes, offset and initial value", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(7), fc.nat(0xffff), (bytes, pad, initial) => {
        const buf = new Uint8Array(pad * 2 + bytes.length);
        buf.set(bytes, pad * 2);
        const view = new DataView(buf.buffer);
        assert.equal(sumRange(view, pad * 2, buf.length, initial), onesComplementSum(bytes, initial));
      }),
      { numRuns: 500 },
    );
  });
  it("folds large sums", () => {
    assert.equal(fold32(0xffff), 0xffff);
    assert.equal(fold32(0x1_0000), 1);
    assert.equal(fold32(2 ** 52 + 5), onesFold(2 ** 52 + 5));
  });
});

function onesFold(n: number): number {
  let s = BigInt(n);
  while (s > 0xffffn) s = (s & 0xffffn) + (s >> 16n);
  return Number(s);
}
