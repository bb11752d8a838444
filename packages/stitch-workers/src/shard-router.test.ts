import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FrameType } from "@cloudtap/tap-format";
import { ShardRouter } from "./shard-router.js";

function body(conn: number, length: number): Uint8Array {
  const b = new Uint8Array(Math.max(16, length));
  new DataView(b.buffer).setUint32(0, conn);
  return b;
}

describe("stitch-workers - shard router", () => {
  it("keeps every frame of a connection on one shard, and routers fed the same frames agree", () => {
    const a = new ShardRouter(3);
    const b = new ShardRouter(3);
    const first = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      const conn = (i * 7919) % 97;
      const type = i % 11 === 0 ? FrameType.ConnOpen : FrameType.Data;
      const f = body(conn, 100 + ((i * 31) % 5000));
      const sa = a.route(type, f);
      assert.equal(b.route(type, f), sa);
      if (!first.has(conn)) first.set(conn, sa);
      assert.equal(sa, first.get(conn));
    }
    assert.equal(a.route(0x7777, body(1, 10)), -1, "a frame of no connection has no shard");
  });

  it("balances bytes, not connection counts: a few heavy connections do not pile up on one shard", () => {
    const r = new ShardRouter(2);
    // 10 heavy connections (10 MB each) and 690 light ones (10 kB), interleaved as they start over time.
    for (let step = 0; step < 700; step++) {
      const heavy = step % 70 === 0;
      const size = heavy ? 10_000_000 : 10_000;
      for (let sent = 0; sent < size; sent += 16_384)
        r.route(FrameType.Data, body(step, Math.min(16_384, size - sent)));
    }
    const [x, y] = r.loads;
    assert.ok(Math.max(x!, y!) / Math.min(x!, y!) < 1.25, `loads ${x} / ${y}`);
  });

  it("forgets closed connections beyond its bound", () => {
    const r = new ShardRouter(2, 10);
    for (let c = 0; c < 100; c++) {
      r.route(FrameType.ConnOpen, body(c, 16));
      r.route(FrameType.ConnClose, body(c, 16));
    }
    assert.equal(r.connections, 10);
  });
});
