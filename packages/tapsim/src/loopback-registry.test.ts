import assert from "node:assert/strict";
import { test } from "node:test";
import { LoopbackRegistry } from "./loopback-registry.js";

test("loopback registry - hands out distinct 127/8 addresses and finds them again", () => {
  const r = new LoopbackRegistry<number>();
  const seen = new Set<string>();
  for (let i = 0; i < 600; i++) {
    const a = r.acquire(() => i);
    assert.match(a, /^127\.\d+\.\d+\.\d+$/);
    const last = Number(a.split(".")[3]);
    assert.ok(last !== 0 && last !== 255, `${a} avoids .0 and .255`);
    assert.ok(!seen.has(a), `${a} is fresh`);
    seen.add(a);
    assert.equal(r.get(a), i);
    assert.equal(r.get(`::ffff:${a}`), i, "IPv4-mapped form");
  }
  const first = [...seen][0]!;
  r.release(first);
  assert.equal(r.get(first), undefined);
  assert.equal(r.size, 599);
  assert.equal(r.get(undefined), undefined);
});
