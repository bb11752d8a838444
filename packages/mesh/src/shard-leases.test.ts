/**
 * Shard leases against a real nats-server: stitchers that come and go share the shards, a shard never runs
 * in two of them at once (each start is checked against the others' running shards), a stitcher that joins
 * gets its share, one that leaves gives its shards back at once, and one that died (it renews nothing and
 * gives nothing back) loses its shards to the others once its entries expire.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Bus, connectBus, ensureKv, type KV } from "@cloudtap/bus";
import { createCounters, createLogger } from "@cloudtap/service-kit";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { assignedShards, runShardLeases } from "./shard-leases.js";

const SHARDS = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("mesh - shard leases", () => {
  let nats: NatsServer;
  let bus: Bus;
  before(async () => {
    nats = await startNatsServer({ jetstream: true });
    bus = await connectBus({ servers: nats.url, name: "shard-leases-test" });
  });
  after(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  it("mesh - shard s goes to the (s mod n)-th member by name", () => {
    assert.deepEqual(assignedShards(["b", "a"], "a", 5), [0, 2, 4]);
    assert.deepEqual(assignedShards(["b", "a"], "b", 5), [1, 3]);
    assert.deepEqual(assignedShards(["a"], "a", 3), [0, 1, 2]);
    assert.deepEqual(assignedShards(["a"], "z", 3), []);
  });

  it("mesh - join, leave and expiry rebalance the shards, never one shard in two members", async () => {
    const kv: KV = await ensureKv(bus.js, "ctap_stitcher_leases_test", { ttlMs: 1500 });
    const runningIn = new Map<number, string>();
    const violations: string[] = [];
    const log = createLogger({ service: "shard-leases-test", level: "error" });
    const member = (name: string) => {
      const stop = new AbortController();
      const mine = new Set<number>();
      const leases = runShardLeases({
        kv,
        instance: name,
        shardCount: SHARDS,
        beatMs: 100,
        hooks: {
          start(shard) {
            const other = runningIn.get(shard);
            if (other !== undefined) violations.push(`${name} started shard ${shard} while ${other} ran it`);
            runningIn.set(shard, name);
            mine.add(shard);
          },
          async stop(shard) {
            await sleep(150); // a drain takes a while; the lease stays held meanwhile
            if (runningIn.get(shard) === name) runningIn.delete(shard);
            mine.delete(shard);
          },
        },
        log,
        counters: createCounters(),
        signal: stop.signal,
      });
      return { stop, mine, leases };
    };
    const until = async (what: string, ok: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!ok()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
        await sleep(50);
      }
    };
    // A member that died holding shard 0 (a SIGKILL: it renews nothing and gives nothing back).
    await kv.put("m.stitcher-0", new TextEncoder().encode("stitcher-0"));
    await kv.create("s.0", new TextEncoder().encode("stitcher-0"));
    const a = member("stitcher-a");
    await until("a owns its share beside the dead member", () => a.mine.size === 3);
    assert.ok(!a.mine.has(0), "the dead member's lease holds until it expires");
    await until("a owns every shard once the dead member's entries expired", () => a.mine.size === SHARDS);
    const b = member("stitcher-b");
    await until("a and b share the shards", () => a.mine.size === 3 && b.mine.size === 3);
    assert.deepEqual([...b.mine].sort(), [1, 3, 5]);
    const c = member("stitcher-c");
    await until(
      "three members, two shards each",
      () => a.mine.size === 2 && b.mine.size === 2 && c.mine.size === 2,
    );
    // b leaves cleanly: its shards go back at once (no wait for the TTL).
    b.stop.abort();
    await b.leases.finished;
    await until("a and c share the shards", () => a.mine.size === 3 && c.mine.size === 3);
    c.stop.abort();
    await c.leases.finished;
    await until("a alone again", () => a.mine.size === SHARDS);
    a.stop.abort();
    await a.leases.finished;
    assert.deepEqual(violations, []);
  });
});
