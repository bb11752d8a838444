/**
 * Replays on a running mesh (docs/mesh.md, "Replay"): a past window run again, beside continuous mode, to
 * outputs of its own. `ReplayService.StartReplay` (served by every fetcher, `replayHandlers`) only writes a
 * replay record to the KV bucket `ctap_replays`; every fetcher and every stitcher of the mesh follows that
 * bucket (`followReplays`) and runs the replay under its own run id: the fetchers a one-shot fetch stage
 * over the window (work queue `ctap.blobs.<run>`, chunks on `ctap.chunks.<run>.<shard>`, end-of-window
 * markers), the stitchers a stitch stage over the shards they own, streaming to the mirror-egress named in
 * the record (the replay's outputs: `cloudtap replay` starts one). The live consumers, subjects and
 * outputs are not touched. A stitcher writes `shard.<run>.<n>` when a shard met the end of the window and
 * everything before it was acked; once every shard is there the replay is `done` (whoever sees it first
 * writes it), and every instance stops its part.
 *
 * Keys of `ctap_replays`: `run.<run>` -> `ReplayRecord`; `shard.<run>.<n>` -> `{ instance }`.
 *
 * Once a replay settled, every instance that ran a part of it removes the replay's consumers and what is
 * left on its subjects (`removeRun` of @cloudtap/bus) after its part ended: a done replay's chunks were all
 * acked (work-queue retention removed them), its consumers are no longer pulled (a shard's loop ends at
 * the end of its window), and a failed replay's leftovers go too.
 */
import { randomBytes } from "node:crypto";
import { BucketName, type Bus, ensureKv, getJson, type KV, putJson, removeRun, sleep } from "@cloudtap/bus";
import type { ReplayService } from "@cloudtap/proto";
import type { ServiceHandlers } from "@cloudtap/rpc";
import type { CounterLabels, CounterRegistry, Logger } from "@cloudtap/service-kit";
import { type BlobStateEntry, blobStateKey } from "./fetch-stage.js";

export const ReplayState = {
  Running: "running",
  Done: "done",
  Failed: "failed",
} as const;
export type ReplayState = (typeof ReplayState)[keyof typeof ReplayState];

export interface ReplayRecord {
  readonly runId: string;
  /** Unix ns as decimal text (JSON has no 64-bit integers). */
  readonly sinceNs: string;
  readonly untilNs: string;
  readonly tapperIds: readonly string[];
  readonly flowRules: readonly string[];
  readonly mirrorEgressAddr: string;
  readonly shardCount: number;
  readonly createdAt: string;
  readonly state: ReplayState;
  readonly error?: string;
}

export class ReplayError extends Error {
  override readonly name = "ReplayError";
  constructor(
    message: string,
    readonly category: "bad-input" | "not-found",
  ) {
    super(message);
  }
}

export const replayRecordKey = (run: string) => `run.${run}`;
export const replayShardKey = (run: string, shard: number) => `shard.${run}.${shard}`;

export function openReplays(bus: Pick<Bus, "js">): Promise<KV> {
  return ensureKv(bus.js, BucketName.Replays, { history: 1 });
}

/** A new replay id: `r` and base-36 time and random digits, one subject token. */
export function newReplayId(nowMs = Date.now()): string {
  return `r${nowMs.toString(36)}${randomBytes(3).toString("hex")}`;
}

async function keysOf(kv: KV, filter: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys(filter)) out.push(k);
  return out;
}

export async function listReplayRecords(kv: KV): Promise<ReplayRecord[]> {
  const out: ReplayRecord[] = [];
  for (const key of await keysOf(kv, "run.*")) {
    const r = await getJson<ReplayRecord>(kv, key);
    if (r) out.push(r);
  }
  return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}

/** Shards of a replay that reported the end of its window. */
export async function replayShardsDone(kv: KV, run: string): Promise<number[]> {
  return (await keysOf(kv, `shard.${run}.*`)).map((k) => Number(k.slice(k.lastIndexOf(".") + 1)));
}

/** Marks a replay done once every shard reported; returns the record as it now is. */
export async function settleReplay(kv: KV, record: ReplayRecord): Promise<ReplayRecord> {
  if (record.state !== ReplayState.Running) return record;
  const done = await replayShardsDone(kv, record.runId);
  if (done.length < record.shardCount) return record;
  const settled = { ...record, state: ReplayState.Done };
  await putJson(kv, replayRecordKey(record.runId), settled);
  return settled;
}

export interface ReplayHandlerOptions {
  readonly bus: Pick<Bus, "js">;
  readonly shardCount: number;
  readonly log: Logger;
}

/** `ReplayService` on a fetcher: start, read and list replays (the work is done by `followReplays`). */
export function replayHandlers(options: ReplayHandlerOptions): ServiceHandlers<typeof ReplayService> {
  const { bus, log } = options;
  let kv: Promise<KV> | undefined;
  const replays = () => {
    kv ??= openReplays(bus);
    return kv;
  };
  const blobState = () => ensureKv(bus.js, BucketName.BlobState);

  async function describe(record: ReplayRecord) {
    const states = await blobState();
    let done = 0;
    let quarantined = 0;
    for await (const key of await states.keys(`${blobStateKey(record.runId, "")}*`)) {
      const e = await getJson<BlobStateEntry>(states, key);
      if (e?.state === "done") done++;
      else if (e?.state === "quarantined") quarantined++;
    }
    const shardsDone = await replayShardsDone(await replays(), record.runId);
    return {
      runId: record.runId,
      state: record.state,
      sinceNs: BigInt(record.sinceNs),
      untilNs: BigInt(record.untilNs),
      blobsListed: BigInt(done + quarantined),
      blobsDone: BigInt(done),
      blobsQuarantined: BigInt(quarantined),
      error: record.error ?? "",
      shardsDone: shardsDone.length,
      shardCount: record.shardCount,
      mirrorEgressAddr: record.mirrorEgressAddr,
      createdAt: record.createdAt,
    };
  }

  return {
    async startReplay(request) {
      if (request.untilNs <= request.sinceNs)
        throw new ReplayError("the window is empty: until_ns must be after since_ns", "bad-input");
      if (request.mirrorEgressAddr === "")
        throw new ReplayError("mirror_egress_addr is required: the replay's outputs", "bad-input");
      const record: ReplayRecord = {
        runId: newReplayId(),
        sinceNs: String(request.sinceNs),
        untilNs: String(request.untilNs),
        tapperIds: [...(request.filters?.tapperIds ?? [])],
        flowRules: [...(request.filters?.flowRules ?? [])],
        mirrorEgressAddr: request.mirrorEgressAddr,
        shardCount: options.shardCount,
        createdAt: new Date().toISOString(),
        state: ReplayState.Running,
      };
      await putJson(await replays(), replayRecordKey(record.runId), record);
      log.info("replay started", {
        run: record.runId,
        since: record.sinceNs,
        until: record.untilNs,
        egress: record.mirrorEgressAddr,
      });
      return { runId: record.runId };
    },
    async getReplay(request) {
      const kv = await replays();
      const record = await getJson<ReplayRecord>(kv, replayRecordKey(request.runId));
      if (!record) throw new ReplayError(`no replay ${request.runId}`, "not-found");
      return describe(await settleReplay(kv, record));
    },
    async listReplays() {
      const kv = await replays();
      const records = await listReplayRecords(kv);
      return { replays: await Promise.all(records.map(async (r) => describe(await settleReplay(kv, r)))) };
    },
  };
}

/** Counters of one run in a shared registry: every series gets the label `run`. */
export function runCounters(counters: CounterRegistry, run: string): CounterRegistry {
  const withRun = (labels?: CounterLabels) => ({ ...labels, run });
  return {
    ...counters,
    counter: (name, labels) => counters.counter(name, withRun(labels)),
    gauge: (name, labels) => counters.gauge(name, withRun(labels)),
  };
}

export interface FollowReplaysOptions {
  readonly bus: Pick<Bus, "js" | "jsm">;
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** How often the bucket is read. Default 1 s. */
  readonly pollMs?: number;
  /**
   * Runs this instance's part of a replay until it is done or `signal` aborts (the replay settled, or the
   * instance stops). Called once per replay and process.
   */
  readonly run: (record: ReplayRecord, kv: KV, signal: AbortSignal) => Promise<void>;
}

/** Follows `ctap_replays`: starts this instance's part of every running replay, stops it once it settled. */
export async function followReplays(options: FollowReplaysOptions): Promise<void> {
  const { log, signal } = options;
  const kv = await openReplays(options.bus);
  const running = new Map<string, { stop: AbortController; work: Promise<void> }>();
  const seen = new Set<string>();
  const cleanups: Promise<void>[] = [];
  try {
    while (!signal.aborted) {
      let records: ReplayRecord[] = [];
      try {
        records = await listReplayRecords(kv);
      } catch (err) {
        if (!signal.aborted)
          log.warn("replays not read", { error: err instanceof Error ? err.message : String(err) });
      }
      for (const record of records) {
        const mine = running.get(record.runId);
        if (record.state !== ReplayState.Running) {
          if (mine) {
            mine.stop.abort(new Error(`replay ${record.state}`));
            running.delete(record.runId);
            cleanups.push(
              mine.work
                .then(() => removeRun(options.bus.jsm, record.runId))
                .then(
                  (removed) => log.info("replay removed from the streams", { run: record.runId, ...removed }),
                  (err: unknown) =>
                    log.warn("replay not removed from the streams", {
                      run: record.runId,
                      error: err instanceof Error ? err.message : String(err),
                    }),
                ),
            );
          }
          continue;
        }
        if (seen.has(record.runId)) continue;
        seen.add(record.runId);
        const stop = new AbortController();
        const onAbort = () => stop.abort(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        const work = options
          .run(record, kv, stop.signal)
          .catch((err: unknown) => {
            if (!stop.signal.aborted)
              log.error("replay part failed", {
                run: record.runId,
                error: err instanceof Error ? err.message : String(err),
              });
          })
          .finally(() => signal.removeEventListener("abort", onAbort));
        running.set(record.runId, { stop, work });
      }
      await sleep(options.pollMs ?? 1000, signal).catch(() => {});
    }
  } finally {
    for (const r of running.values()) r.stop.abort(signal.reason);
    await Promise.allSettled([...running.values()].map((r) => r.work));
    await Promise.allSettled(cleanups);
  }
}
