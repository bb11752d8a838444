import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RangeSet } from "./range-set.js";

describe("inspect - range set", () => {
  const steps: { add: [number, number]; dup: number; want: [number, number][] }[] = [
    { add: [10, 20], dup: 0, want: [[10, 20]] },
    {
      add: [0, 5],
      dup: 0,
      want: [
        [0, 5],
        [10, 20],
      ],
    },
    { add: [5, 10], dup: 0, want: [[0, 20]] },
    { add: [15, 25], dup: 5, want: [[0, 25]] },
    {
      add: [30, 40],
      dup: 0,
      want: [
        [0, 25],
        [30, 40],
      ],
    },
    { add: [0, 40], dup: 35, want: [[0, 40]] },
    { add: [50, 50], dup: 0, want: [[0, 40]] },
  ];
  it("merges, counts duplicate bytes, and finds holes", () => {
    const r = new RangeSet();
    for (const s of steps) {
      assert.equal(r.add(...s.add), s.dup, `add ${s.add}`);
      assert.deepEqual(r.ranges(), s.want, `after add ${s.add}`);
    }
    const g = new RangeSet();
    g.add(5, 10);
    g.add(20, 30);
    assert.deepEqual(g.holes(40), [
      [0, 5],
      [10, 20],
      [30, 40],
    ]);
    assert.deepEqual(g.holes(25), [
      [0, 5],
      [10, 20],
    ]);
    assert.equal(g.size, 15);
  });
});
