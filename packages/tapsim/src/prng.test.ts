import assert from "node:assert/strict";
import { test } from "node:test";
import { createPrng } from "./prng.js";

test("prng - the same seed gives the same stream, another seed another", () => {
  const a = createPrng("seed");
  const b = createPrng("seed");
  const c = createPrng("seed2");
  const xs = Array.from({ length: 64 }, () => a.u32());
  assert.deepEqual(
    Array.from({ length: 64 }, () => b.u32()),
    xs,
  );
  assert.notDeepEqual(
    Array.from({ length: 64 }, () => c.u32()),
    xs,
  );
  assert.equal(createPrng(42).hex(8), createPrng("42").hex(8), "numbers and their text seed alike");
});

test("prng - a fork depends on its label only, not on how much the parent drew", () => {
  const a = createPrng("s");
  const b = createPrng("s");
  for (let i = 0; i < 10; i++) b.u32();
  assert.equal(a.fork("x").hex(16), b.fork("x").hex(16));
  assert.notEqual(a.fork("x").hex(16), a.fork("y").hex(16));
});

test("prng - draws stay within their bounds", () => {
  const p = createPrng("bounds");
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const v = p.int(-2, 3);
    assert.ok(v >= -2 && v <= 3 && Number.isInteger(v), `int ${v}`);
    seen.add(v);
    const f = p.float();
    assert.ok(f >= 0 && f < 1, `float ${f}`);
  }
  assert.deepEqual(
    [...seen].sort((x, y) => x - y),
    [-2, -1, 0, 1, 2, 3],
  );
  assert.throws(() => p.int(3, 2), RangeError);
  assert.throws(() => p.pick([]), RangeError);
});

test("prng - weighted picks follow their weights", () => {
  const p = createPrng("weights");
  const counts = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 10000; i++) {
    counts[
      p.weighted<keyof typeof counts>([
        ["a", 1],
        ["b", 3],
        ["c", 0],
      ])
    ]++;
  }
  assert.equal(counts.c, 0);
  assert.ok(Math.abs(counts.b / counts.a - 3) < 0.3, `ratio ${counts.b / counts.a}`);
});

test("prng - fill covers every byte, including a ragged tail", () => {
  const p = createPrng("fill");
  const out = new Uint8Array(4099);
  p.fill(out);
  const tail = out.subarray(4096);
  assert.ok(
    tail.some((b) => b !== 0),
    "tail bytes are filled",
  );
  const histogram = new Array<number>(256).fill(0);
  for (const b of out) histogram[b]!++;
  assert.ok(Math.max(...histogram) < 40, "bytes look uniform");
});
