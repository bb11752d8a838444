/**
 * The stitch stage over N worker threads, for one capture file: the one-process form of the mesh's
 * "fetcher -> stitcher x N by connection shard -> egress".
 *
 * - This thread reads the blobs (read-ahead), shares each one with every worker (one SharedArrayBuffer, no
 *   copy per worker), and hands key logs met among the blobs to all of them in the same place of the order.
 * - Worker k stitches the connections with `connShard(id, N) === k` (both directions, every record of a
 *   connection: one worker owns a connection), and sends back header-less capture records per round (one
 *   round = one blob or key log).
 * - Rounds are written in order; within a round the workers' records are merged by packet time
 *   (`mergeCaptureRecords`), so the file reads like the one-thread run's. Secrets blocks stay before the
 *   packets they decrypt. Time (flow timeouts) follows the newest record of any shard, as of the last
 *   finished round.
 * - Bounded: at most `depth` rounds are in flight (blobs held, output not yet written). Each worker has the
 *   stitcher's own caps, so the process's caps are N times one stitcher's.
 * - Problems: a read failure is reported here; damage to a blob's framing by worker 0; damage inside one
 *   frame by the worker that owned the frame. Counters are the sums of the workers'.
 */
import { availableParallelism } from "node:os";
import type { Worker } from "node:worker_threads";
import { type BlobProblem, type BlobSource, type FetchedBlob, readAhead } from "@cloudtap/fetch";
import { mergeCaptureRecords } from "@cloudtap/pcap";
import {
  type FlowTableCounters,
  type StitcherCounters,
  type StitchProgress,
  sumCounters,
} from "@cloudtap/stitch";
import { StitchWorkerError } from "./errors.js";
import type { FromWorker, ShardInit, ShardSettings, ToWorker } from "./protocol.js";
import { startWorker } from "./thread-entry.js";

export interface ParallelStitchOutput {
  /** Writes merged records (after the file header the output wrote itself); `done` when the buffer is free. */
  writeRecords(chunk: Uint8Array, packets: number, done?: () => void): Promise<void>;
}

export interface ParallelStitchOptions {
  /** Worker threads (at least 2; one thread is the plain `runStitchJob`). */
  readonly workers: number;
  /** Data blobs and key logs, in the order to stitch them (as `sortBlobsByTime` gives). */
  readonly blobs: readonly BlobSource[];
  readonly settings: ShardSettings;
  /** Key-log texts known before the run. */
  readonly keyLogs?: readonly string[];
  readonly output: ParallelStitchOutput;
  /** Rounds in flight. Default 3, at least 2. */
  readonly depth?: number;
  readonly onProgress?: (progress: StitchProgress) => void;
  readonly signal?: AbortSignal;
}

export interface ParallelStitchReport extends StitchProgress {
  readonly packets: number;
  readonly problems: readonly BlobProblem[];
  readonly problemCounts: Readonly<Record<string, number>>;
  readonly unknownFrames: number;
  /** The workers' counters, summed. */
  readonly stitcher: StitcherCounters;
  readonly table: FlowTableCounters;
  readonly workers: number;
}

/**
 * A worker count for `auto`: one thread below 4 cores, else the cores less one (for the merging and writing
 * thread), at most 4. Measured on 2 cores: 2 workers took 1.08 s where one thread took 0.85 s (295 MB
 * capture, --variant both): the extra isolates' garbage collection and compilation, the merge and the file
 * writes need the second core that one thread already uses for its collector and its writes.
 */
export function defaultWorkerCount(cores = availableParallelism()): number {
  return cores < 4 ? 1 : Math.min(4, cores - 1);
}

class Deferred<T> {
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  readonly promise = new Promise<T>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
}

type Out = Extract<FromWorker, { t: "out" }>;
type Done = Extract<FromWorker, { t: "done" }>;

const OUTPUT_CHUNK = 1024 * 1024;

export async function runParallelStitch(o: ParallelStitchOptions): Promise<ParallelStitchReport> {
  const n = Math.max(2, Math.floor(o.workers));
  // At least 2: a worker sends a round's output when the next round (or the end) arrives.
  const depth = Math.max(2, o.depth ?? 3);
  const format = o.settings.format;
  const workers: Worker[] = [];
  /** Per round, per worker: its output. */
  const rounds = new Map<number, { outs: (Out | undefined)[]; got: number; ready: Deferred<void> }>();
  const done: Deferred<Done>[] = [];
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    for (const r of rounds.values()) r.ready.reject(failure);
    for (const d of done) d.reject(failure);
  };
  const roundOf = (round: number) => {
    let r = rounds.get(round);
    if (!r) {
      r = { outs: new Array(n).fill(undefined), got: 0, ready: new Deferred<void>() };
      r.ready.promise.catch(() => {});
      rounds.set(round, r);
      if (failure) r.ready.reject(failure);
    }
    return r;
  };
  const progress: StitchProgress = { blobs: 0, blobBytes: 0, records: 0, payloadBytes: 0, outputBytes: 0 };
  const shardProgress = Array.from({ length: n }, () => ({ records: 0, payloadBytes: 0 }));
  const updateProgress = () => {
    progress.records = shardProgress.reduce((a, p) => a + p.records, 0);
    progress.payloadBytes = shardProgress.reduce((a, p) => a + p.payloadBytes, 0);
  };
  let nowNs = 0n;

  for (let shard = 0; shard < n; shard++) {
    const init: ShardInit = { shard, shards: n, settings: o.settings, keyLogs: o.keyLogs ?? [] };
    const w = startWorker("./worker.ts", "stitch-worker.mjs", { workerData: init });
    const d = new Deferred<Done>();
    d.promise.catch(() => {});
    done.push(d);
    w.on("message", (m: FromWorker) => {
      if (m.t === "out") {
        const r = roundOf(m.round);
        r.outs[shard] = m;
        shardProgress[shard] = m.progress;
        if (m.nowNs > nowNs) nowNs = m.nowNs;
        if (++r.got === n) r.ready.resolve();
      } else if (m.t === "done") {
        shardProgress[shard] = m.progress;
        d.resolve(m);
      } else {
        const e = new StitchWorkerError(shard, m.message);
        if (m.stack) e.stack = m.stack;
        fail(e);
      }
    });
    w.on("error", (err) => fail(new StitchWorkerError(shard, err.message, { cause: err })));
    w.on("exit", (code) => {
      if (code !== 0) fail(new StitchWorkerError(shard, `exited with status ${code}`));
    });
    workers.push(w);
  }

  // Output: merged records copied into recycled chunks; a chunk returns to the pool once written.
  const pool: Uint8Array<ArrayBuffer>[] = [];
  let out = new Uint8Array(OUTPUT_CHUNK);
  let used = 0;
  let roundPackets = 0;
  const writes: Promise<void>[] = [];
  const emit = (records: Uint8Array) => {
    let at = 0;
    while (at < records.length) {
      const k = Math.min(records.length - at, out.length - used);
      out.set(records.subarray(at, at + k), used);
      used += k;
      at += k;
      if (used === out.length) writeOut();
    }
  };
  const writeOut = () => {
    if (used === 0) return;
    const chunk = out.subarray(0, used);
    const full = out;
    progress.outputBytes += used;
    writes.push(o.output.writeRecords(chunk, roundPackets, () => pool.push(full)));
    roundPackets = 0;
    out = pool.pop() ?? new Uint8Array(OUTPUT_CHUNK);
    used = 0;
  };
  const flushWrites = async () => {
    writeOut();
    const w = writes.splice(0);
    await Promise.all(w);
  };
  const merge = async (outs: readonly { chunks: readonly Uint8Array[]; packets: number }[]) => {
    roundPackets += outs.reduce((a, x) => a + x.packets, 0);
    mergeCaptureRecords(
      format,
      outs.map((x) => x.chunks),
      emit,
    );
    // The workers' chunks go back to them for reuse (moved, not copied).
    outs.forEach((x, shard) => {
      const buffers = [...new Set(x.chunks.map((c) => c.buffer as ArrayBuffer))];
      if (buffers.length > 0) {
        const msg: ToWorker = { t: "recycle", buffers };
        workers[shard]!.postMessage(msg, buffers);
      }
    });
    // Keep the file writes bounded: wait for this round's writes before taking the next.
    await flushWrites();
  };

  const problems: BlobProblem[] = [];
  let releaseRound: (round: number) => void = () => {};
  let packets = 0;
  let next = 0;
  const finishRound = async (round: number) => {
    const r = roundOf(round);
    await r.ready.promise;
    rounds.delete(round);
    releaseRound(round);
    const outs = r.outs as Out[];
    for (const x of outs) packets += x.packets;
    await merge(outs);
    updateProgress();
    o.onProgress?.(progress);
  };

  try {
    // Read-ahead of whole blobs, `depth` ahead of the one being handed out, straight into shared buffers
    // that are reused once every worker is done with their round (no copy, no fresh pages per blob).
    const spare: SharedArrayBuffer[] = [];
    const allocate = (size: number): Uint8Array => {
      let at = spare.findIndex((b) => b.byteLength >= size);
      if (at < 0) {
        spare.push(new SharedArrayBuffer(Math.max(size + (size >> 3), 1 << 20)));
        at = spare.length - 1;
      }
      const [buffer] = spare.splice(at, 1);
      return new Uint8Array(buffer!);
    };
    const recycle = (buffer: ArrayBufferLike) => {
      if (buffer instanceof SharedArrayBuffer) spare.push(buffer);
    };
    const fetchedOf = new Map<number, FetchedBlob>();
    releaseRound = (round: number) => {
      fetchedOf.get(round)?.release();
      fetchedOf.delete(round);
    };
    let round = 0;
    // `depth` blobs in hand: the one handed out and depth - 1 read ahead.
    for await (const fetched of readAhead(o.blobs, {
      depth: depth - 1,
      alwaysWhole: true,
      allocate,
      recycle,
      ...(o.signal ? { signal: o.signal } : {}),
    })) {
      if (failure) throw failure;
      const blob = fetched.blob;
      let shared: Uint8Array;
      try {
        shared = await fetched.whole();
      } catch (err) {
        problems.push({
          blob: blob.key,
          kind: "read-failed",
          message: err instanceof Error ? err.message : String(err),
        });
        continue;
      }
      if (!(shared.buffer instanceof SharedArrayBuffer)) {
        // A store that ignored `allocate`, or a blob read as a stream: share a copy.
        const copy = allocate(shared.length).subarray(0, shared.length);
        copy.set(shared);
        shared = copy;
        fetched.release();
        const copied = copy.buffer as SharedArrayBuffer;
        fetchedOf.set(round, { ...fetched, release: () => spare.push(copied) });
      } else fetchedOf.set(round, fetched);
      const bytes = shared;
      if (blob.kind !== "keys") {
        progress.blobs++;
        progress.blobBytes += bytes.length;
      }
      const msg: ToWorker = {
        t: blob.kind === "keys" ? "keys" : "blob",
        round,
        key: blob.key,
        bytes,
        nowNs,
      };
      for (const w of workers) w.postMessage(msg);
      roundOf(round);
      round++;
      while (next < round - depth + 1) await finishRound(next++);
    }
    for (const w of workers) w.postMessage({ t: "end" } satisfies ToWorker);
    while (next < round) await finishRound(next++);
    const finals = await Promise.all(done.map((d) => d.promise));
    for (const f of finals) packets += f.packets;
    await merge(finals);
    updateProgress();
    const stitcher = sumCounters(finals.map((f) => f.stitcher));
    const table = sumCounters(finals.map((f) => f.table));
    let unknownFrames = 0;
    const shardProblems: BlobProblem[] = [];
    for (const f of finals) {
      unknownFrames += f.unknownFrames;
      shardProblems.push(...f.problems);
    }
    problems.push(...mergeShardProblems(shardProblems));
    const problemCounts: Record<string, number> = {};
    for (const p of problems) problemCounts[p.kind] = (problemCounts[p.kind] ?? 0) + 1;
    return { ...progress, packets, problems, problemCounts, unknownFrames, stitcher, table, workers: n };
  } finally {
    await Promise.allSettled(writes);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/**
 * Problems that each worker reports of its own frames, as one problem per blob: out-of-range records of a blob
 * met by several workers are one `time-out-of-range` problem with their counts added (the first worker's
 * example kept), as the one-thread run reports it.
 */
export function mergeShardProblems(problems: readonly BlobProblem[]): BlobProblem[] {
  const out: BlobProblem[] = [];
  const outOfRange = new Map<string, { index: number; count: number; rest: string }>();
  for (const p of problems) {
    const m = p.kind === "time-out-of-range" ? /^(\d+) (record\(s\) .*)$/s.exec(p.message) : null;
    if (!m) {
      out.push(p);
      continue;
    }
    const seen = outOfRange.get(p.blob);
    if (!seen) {
      outOfRange.set(p.blob, { index: out.length, count: Number(m[1]), rest: m[2]! });
      out.push(p);
      continue;
    }
    seen.count += Number(m[1]);
    out[seen.index] = { ...out[seen.index]!, message: `${seen.count} ${seen.rest}` };
  }
  return out;
}
