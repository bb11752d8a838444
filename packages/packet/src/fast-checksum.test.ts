import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { onesComplementSum } from "./checksum.js";
import { checksumImplementation, copyAndSum, sumBytesOf } from "./copy-sum.js";
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
  it("the native sum was built at install and is in use (CLOUDTAP_CHECKSUM_NATIVE=0 tests JavaScript's)", (t) => {
    if (process.env["CLOUDTAP_CHECKSUM_NATIVE"] === "0") {
      t.skip("CLOUDTAP_CHECKSUM_NATIVE=0");
      return;
    }
    assert.equal(checksumImplementation, "native");
  });
  it("copyAndSum copies the bytes and sums them as the reference, at any alignment of source and target", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 9000 }),
        fc.nat(15),
        fc.nat(15),
        fc.nat(2 ** 40),
        (bytes, srcPad, dstPad, initial) => {
          // Source offsets of either parity relative to the buffer: the sum is over words from srcAt.
          const src = new Uint8Array(srcPad + bytes.length + 3);
          src.set(bytes, srcPad);
          const dst = new Uint8Array(dstPad + bytes.length + 5).fill(0xa5);
          const sum = copyAndSum(src, srcPad, bytes.length, dst, dstPad, initial);
          assert.equal(fold32(sum), onesComplementSum(bytes, fold32(initial)));
          assert.deepEqual(dst.subarray(dstPad, dstPad + bytes.length), bytes);
          // Nothing around the target range is touched.
          assert.ok(dst.subarray(0, dstPad).every((b) => b === 0xa5));
          assert.ok(dst.subarray(dstPad + bytes.length).every((b) => b === 0xa5));
          assert.equal(fold32(sumBytesOf(src, srcPad, bytes.length, initial)), fold32(sum));
        },
      ),
      { numRuns: 400 },
    );
  });
  it("copyAndSum over views into one buffer at odd byte offsets, and sums of only zeros or only ones", () => {
    const whole = new Uint8Array(4096);
    for (let i = 0; i < whole.length; i++) whole[i] = (i * 131 + 17) & 0xff;
    const src = whole.subarray(3, 3 + 1500);
    const dst = new Uint8Array(2000);
    const sum = copyAndSum(src, 1, 1449, dst, 54);
    assert.equal(sum, onesComplementSum(src.subarray(1, 1450)));
    assert.equal(copyAndSum(new Uint8Array(1000), 0, 1000, dst, 0), 0);
    assert.equal(copyAndSum(new Uint8Array(1000).fill(0xff), 0, 1000, dst, 0), 0xffff);
  });
  it("copyAndSum refuses ranges outside its buffers and overlapping ones", () => {
    const a = new Uint8Array(600);
    assert.throws(() => copyAndSum(a, 100, 501, new Uint8Array(1000), 0), RangeError);
    assert.throws(() => copyAndSum(a, 0, 500, new Uint8Array(400), 0), RangeError);
    if (checksumImplementation === "native")
      assert.throws(() => copyAndSum(a, 0, 300, a.subarray(100), 0), /overlap/);
  });
  it("folds large sums", () => {
    assert.equal(fold32(0xffff), 0xffff);
    assert.equal(fold32(0x1_0000), 1);
    assert.equal(fold32(2 ** 52 + 5), onesFold(2 ** 52 + 5));
    // A low 32-bit word near 2^32 plus a high part: the carry past 2^32 is kept (it was dropped before).
    for (const n of [2 ** 36 - 15, 2 ** 40 - 1, 0xffff_ffff + 2 ** 32 * 511, 2 ** 53 - 1])
      assert.equal(fold32(n), onesFold(n), `fold32(${n})`);
  });
});

function onesFold(n: number): number {
  let s = BigInt(n);
  while (s > 0xffffn) s = (s & 0xffffn) + (s >> 16n);
  return Number(s);
}
