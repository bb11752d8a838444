/**
 * Elastic shard ownership (`STITCHER_SHARDS=auto`, docs/mesh.md "Scale-out"): stitchers that come and go
 * share the shards without an operator assigning ranges. A shard's durable consumer must have exactly one
 * stitcher at a time (both directions of a connection meet in one process), so ownership is a lease in a
 * NATS KV bucket whose entries expire (`ctap_stitcher_leases`, max age `ttlMs`):
 *
 * - every `beatMs` each stitcher puts `m.<instance>` (its membership), lists the members, and computes the
 *   shards it should own: shard `s` belongs to the `s mod n`-th member in name order (every member computes
 *   the same assignment from the same list);
 * - a shard it should own and does not: it creates `s.<shard>` (create fails while another holds it), and
 *   starts consuming only once it has;
 * - a shard it owns and should not (a member joined): it stops consuming, drains the shard as on shutdown
 *   (what it holds goes out; messages of connections still open stay unacked for the next owner to rebuild,
 *   the egress dropping the copies), and only then deletes the lease; the new owner takes it on its next beat;
 * - a shard it owns and should: it renews the lease (an update at the revision it holds). A renewal that
 *   fails means the lease expired and may be someone else's: the shard stops at once.
 *
 * A member that dies (SIGKILL) stops renewing: its membership and leases expire after `ttlMs`, the others
 * recompute and take its shards, and its unacked messages come back to them after their ack wait. The TTL
 * is the failover time; the beat must be well inside it (default 1 s against 6 s).
 */
import type { KV } from "@cloudtap/bus";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";

export const SHARD_LEASE_BUCKET = "ctap_stitcher_leases";
export const DEFAULT_SHARD_LEASE_TTL_MS = 6000;
export const DEFAULT_SHARD_LEASE_BEAT_MS = 1000;

export interface ShardLeaseHooks {
  /** Begin consuming `shard` (its lease is held). */
  start(shard: number): void;
  /** Stop consuming `shard` and drain it; resolves once nothing of it runs here any more. */
  stop(shard: number): Promise<void>;
}

export interface ShardLeasesOptions {
  readonly kv: KV;
  /** This stitcher's name (unique among the live stitchers). */
  readonly instance: string;
  readonly shardCount: number;
  readonly hooks: ShardLeaseHooks;
  readonly beatMs?: number;
  readonly log: Logger;
  readonly counters: CounterRegistry;
  readonly signal: AbortSignal;
}

export interface ShardLeases {
  /** The shards this instance holds a lease of. */
  owned(): readonly number[];
  /** Resolves when the signal ended the loop and every lease and the membership are given back. */
  readonly finished: Promise<void>;
}

const encoder = new TextEncoder();

/** The shards member `instance` should own among `members`: `s mod n` by name order. */
export function assignedShards(members: readonly string[], instance: string, shardCount: number): number[] {
  const sorted = [...new Set(members)].sort();
  const at = sorted.indexOf(instance);
  if (at < 0) return [];
  const out: number[] = [];
  for (let s = at; s < shardCount; s += sorted.length) out.push(s);
  return out;
}

export function runShardLeases(o: ShardLeasesOptions): ShardLeases {
  const beatMs = o.beatMs ?? DEFAULT_SHARD_LEASE_BEAT_MS;
  const me = encoder.encode(o.instance);
  /** Shard -> the lease's revision. */
  const held = new Map<number, number>();
  const memberKey = `m.${o.instance}`;

  async function members(): Promise<string[]> {
    const names: string[] = [];
    for await (const key of await o.kv.keys("m.*")) names.push(key.slice(2));
    return names;
  }

  /** Shards draining before their lease is given back (still renewed meanwhile, so nobody takes them). */
  const releasing = new Map<number, Promise<void>>();

  function release(shard: number, why: string): Promise<void> {
    const pending = releasing.get(shard);
    if (pending) return pending;
    const done = (async () => {
      try {
        await o.hooks.stop(shard);
      } finally {
        const revision = held.get(shard);
        held.delete(shard);
        releasing.delete(shard);
        if (revision !== undefined)
          await o.kv.delete(`s.${shard}`, { previousSeq: revision }).catch(() => {
            // Taken already (our lease had expired): nothing of ours to give back.
          });
        o.counters.counter("stitcher_shard_releases").add(1);
        o.log.info("shard released", { shard, why });
      }
    })();
    releasing.set(shard, done);
    return done;
  }

  let beats = 0;
  async function beat(): Promise<void> {
    await o.kv.put(memberKey, me);
    const wanted = new Set(assignedShards(await members(), o.instance, o.shardCount));
    // Renewals first, and never behind a drain: a lease not renewed within its TTL is another's.
    for (const [shard, revision] of [...held]) {
      try {
        held.set(shard, await o.kv.update(`s.${shard}`, me, revision));
      } catch (err) {
        o.counters.counter("stitcher_shard_leases_lost").add(1);
        o.log.warn("shard lease lost: stopping the shard", {
          shard,
          error: err instanceof Error ? err.message : String(err),
        });
        held.delete(shard);
        void o.hooks.stop(shard);
      }
    }
    for (const shard of held.keys())
      if (!wanted.has(shard) && !releasing.has(shard)) void release(shard, "assigned to another stitcher");
    // The first beat only announces this member: stitchers starting together see each other before any
    // takes a shard, instead of one taking all and handing most over a second later.
    if (beats++ === 0) return;
    for (const shard of wanted) {
      if (held.has(shard) || o.signal.aborted) continue;
      let revision: number;
      try {
        revision = await o.kv.create(`s.${shard}`, me);
      } catch {
        continue; // still held by its previous owner (draining, or dead until its lease expires)
      }
      held.set(shard, revision);
      o.counters.counter("stitcher_shard_acquisitions").add(1);
      o.log.info("shard acquired", { shard });
      o.hooks.start(shard);
    }
    o.counters.gauge("stitcher_shards_owned").set(held.size);
  }

  const finished = (async () => {
    while (!o.signal.aborted) {
      try {
        await beat();
      } catch (err) {
        o.counters.counter("stitcher_shard_lease_errors").add(1);
        o.log.warn("shard leases: beat failed", { error: err instanceof Error ? err.message : String(err) });
      }
      // One listener per wait, removed when the beat comes (the signal lives as long as the process).
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          o.signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, beatMs);
        o.signal.addEventListener("abort", done, { once: true });
      });
    }
    // Stopped: every shard drains (the stage's own shutdown), then the leases and the membership go.
    await Promise.allSettled([...held.keys()].map((shard) => release(shard, "shutdown")));
    await o.kv.delete(memberKey).catch(() => {});
  })();

  return { owned: () => [...held.keys()].sort((a, b) => a - b), finished };
}
