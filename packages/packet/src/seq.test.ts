import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seqAdd, seqDiff, seqGt, seqGte, seqLt, seqLte, seqMax, toSeq } from "./seq.js";

describe("seq", () => {
  it("seq - toSeq reduces modulo 2^32 and rejects non-integers", () => {
    assert.equal(toSeq(0), 0);
    assert.equal(toSeq(0xffff_ffff), 0xffff_ffff);
    assert.equal(toSeq(0x1_0000_0000), 0);
    assert.equal(toSeq(-1), 0xffff_ffff);
    assert.throws(() => toSeq(1.5), RangeError);
  });

  const diffCases: { a: number; b: number; want: number }[] = [
    { a: 10, b: 3, want: 7 },
    { a: 3, b: 10, want: -7 },
    { a: 5, b: 0xffff_fffb, want: 10 }, // across the wrap
    { a: 0xffff_fffb, b: 5, want: -10 },
    { a: 0x7fff_ffff, b: 0, want: 0x7fff_ffff },
    { a: 0x8000_0000, b: 0, want: -0x8000_0000 }, // exactly half-way: undefined order, documented as negative
    { a: 0, b: 0, want: 0 },
  ];
  for (const c of diffCases) {
    it(`seq - diff ${c.a.toString(16)} - ${c.b.toString(16)} = ${c.want}`, () => {
      assert.equal(seqDiff(toSeq(c.a), toSeq(c.b)), c.want);
    });
  }

  it("seq - comparisons are wrap-aware", () => {
    const before = toSeq(0xffff_fff0);
    const after = toSeq(0x10);
    assert.equal(seqLt(before, after), true);
    assert.equal(seqLte(before, after), true);
    assert.equal(seqGt(after, before), true);
    assert.equal(seqGte(after, before), true);
    assert.equal(seqLt(after, before), false);
    assert.equal(seqLte(after, after), true);
    assert.equal(seqGte(after, after), true);
    assert.equal(seqGt(after, after), false);
    assert.equal(seqMax(before, after), after);
    assert.equal(seqMax(after, before), after);
  });

  it("seq - add wraps in both directions", () => {
    assert.equal(seqAdd(toSeq(0xffff_ffff), 1), 0);
    assert.equal(seqAdd(toSeq(0xffff_fff0), 0x20), 0x10);
    assert.equal(seqAdd(toSeq(5), -10), 0xffff_fffb);
  });
});
