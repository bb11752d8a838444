/**
 * Continuous mode (`cloudtap stitch --follow`): one stitch job over a store that keeps filling, with a
 * resumable state, so that a run killed at any point and started again with the same state neither loses
 * nor writes twice what it had stitched (docs/stitching.md, "Continuous mode").
 *
 * Blobs come from `followBlobs` of @cloudtap/fetch (poll, lateness window, start-time order) and are
 * stitched by `runStitchJob`. After each blob (at most every `checkpointMs`) the job checkpoints: the
 * encoders' partial chunks are written, the wiring makes its outputs durable and says where they stand
 * (`syncOutputs`: file lengths), and the state is saved (`saveState`, atomically). The state holds:
 *
 * - the listing cursor and the keys handed out within the lateness window (never stitched as new again);
 * - `replay`: the blobs stitched, in order, from the oldest one holding a record of a connection the
 *   stitcher still held (open, waiting for keys, or with frames in the time order). A restart reads them
 *   again, so those connections are rebuilt from their first record exactly as before;
 * - per flow (connection, variant, occurrence) the frames written so far and whether the flow had ended,
 *   for every connection with a record in a replayed blob: a rebuilt flow skips the frames it had written;
 *   a flow that had ended and appears again in a replayed blob (its tail) writes nothing;
 * - the key logs embedded in pcapng outputs since the replay point (by hash), not embedded twice;
 * - the outputs' positions (opaque here): the wiring truncates files back to them before it writes on.
 *
 * Frames still held in the time order at a checkpoint were not written and are not counted: a restart
 * makes them again. Aborting the signal stops the listing and saves a checkpoint as things stand (the
 * connections still open in the replay list); the job then ends as a one-shot job does (every flow
 * completed and flushed) and saves nothing after that. The outputs are complete as they are; a restart with
 * the state cuts them back to the checkpoint (what the completion wrote goes) and goes on with the open
 * connections, so a stop and a restart write what one uninterrupted run writes.
 */
import { createHash } from "node:crypto";
import { type BlobSource, followBlobs } from "@cloudtap/fetch";
import type { ObjectStore } from "@cloudtap/object-store";
import {
  type FlowAwareFrameSink,
  type FrameFlowContext,
  type FrameSink,
  isFlowAware,
} from "@cloudtap/packet";
import { parseBlobKey, type TapRecord } from "@cloudtap/tap-format";
import {
  type ChunkedOutput,
  type OutputSink,
  runStitchJob,
  type StitchJobReport,
  type StitchProgress,
} from "./stitch-job.js";
import type { Stitcher } from "./stitcher.js";

export const FOLLOW_STATE_VERSION = 1;

export interface FollowFlowMark {
  /** Frames of the flow that reached the outputs. */
  readonly frames: number;
  /** The flow had ended (every frame out) at the checkpoint. */
  readonly ended: boolean;
}

export interface FollowReplayBlob {
  readonly key: string;
  readonly kind?: "keys";
  /** The blob's place in the order blobs were stitched. */
  readonly seq: number;
}

/** The resumable state of a continuous run, as JSON (bigints as decimal strings). */
export interface FollowState {
  readonly version: typeof FOLLOW_STATE_VERSION;
  readonly nextSeq: number;
  /** Blobs and key logs stitched by this run and the runs it resumed (each counted once). */
  readonly blobsStitched: number;
  /** Newest start time handed out by the listing (Unix ns). */
  readonly cursorNs?: string;
  /** Keys handed out within the lateness window of the cursor. */
  readonly seen: readonly string[];
  readonly replay: readonly FollowReplayBlob[];
  /** By flow key `<connId>/<variant>[+plain]#<occurrence>`. */
  readonly flows: Readonly<Record<string, FollowFlowMark>>;
  /** sha-256 (hex, 32 digits) of key-log texts embedded since the replay point. */
  readonly embedded: readonly string[];
  /**
   * The blob (its `seq`) each of `embedded` was embedded in, in the same order. A state without it (older
   * runs) counts them from the replay point.
   */
  readonly embeddedSeqs?: readonly number[];
  /** Where the wiring's outputs stood (file lengths): written back to the wiring on resume. */
  readonly outputs?: unknown;
}

export interface FollowJobOptions {
  readonly store: ObjectStore;
  /** Key logs followed from this store (default: none followed; give the stitcher its keys otherwise). */
  readonly keyStore?: ObjectStore;
  readonly prefix?: string;
  readonly pollMs?: number;
  readonly latenessNs?: bigint;
  /** Where a run without state starts; default: everything in the store. */
  readonly sinceNs?: bigint;
  /** The state of an earlier run with the same outputs, or undefined for a new run. */
  readonly state?: FollowState;
  /** Builds the stitcher over the job's sink (which counts and skips frames per flow). */
  readonly createStitcher: (sink: FrameSink, embedKeys: (keyLogText: string) => void) => Stitcher;
  /** The outputs: frames (`sink`), key embedding, chunks and where the chunks are written. */
  readonly sink: FrameSink;
  readonly embedKeys?: (keyLogText: string) => void;
  readonly output: ChunkedOutput;
  readonly write: OutputSink;
  /** Makes what was written durable (fsync) and returns the outputs' positions for the state. */
  readonly syncOutputs: () => Promise<unknown>;
  /** Saves the state atomically (a crash leaves the old state or the new one). */
  readonly saveState: (state: FollowState) => Promise<void>;
  /** Minimum time between checkpoints (ms of `now`). Default 1000; 0: after every blob. */
  readonly checkpointMs?: number;
  readonly onCorruption?: "resync" | "skip-rest";
  readonly onKeyLog?: (key: string, text: Uint8Array) => void;
  readonly onProgress?: (progress: StitchProgress) => void;
  /** Aborting stops following; the job then completes its flows and returns. */
  readonly signal?: AbortSignal;
  readonly now?: () => number;
}

export interface FollowJobReport {
  readonly job: StitchJobReport;
  readonly stitcher: Stitcher;
  /** Blobs read again from the replay point of the state. */
  readonly replayedBlobs: number;
  /** Frames made again on resume and not written (they had been). */
  readonly skippedFrames: number;
  readonly checkpoints: number;
}

interface LiveFlow {
  frames: number;
  ended: boolean;
}

interface ConnSpan {
  first: number;
  last: number;
}

const hashText = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32);

export async function runFollowJob(options: FollowJobOptions): Promise<FollowJobReport> {
  const now = options.now ?? Date.now;
  const prior = options.state;
  const priorFlows = new Map(Object.entries(prior?.flows ?? {}));
  const replay = prior?.replay ?? [];
  const replayEnd = replay.length > 0 ? replay[replay.length - 1]!.seq + 1 : 0;
  let nextSeq = prior?.nextSeq ?? 0;
  /** Sequence numbers of the blobs handed to the job and not done yet, in order: the first is being read. */
  const inFlight: number[] = [];
  const currentSeq = () => inFlight[0] ?? nextSeq;
  const replaying = () => currentSeq() < replayEnd;
  let skippedFrames = 0;
  let blobsStitched = prior?.blobsStitched ?? 0;
  let dirty = false;
  let checkpoints = 0;

  // What was stitched, in order, with the sequence number each blob got.
  const stitched: FollowReplayBlob[] = [...replay];
  const seen = new Set(prior?.seen ?? []);
  let cursorNs = prior?.cursorNs === undefined ? undefined : BigInt(prior.cursorNs);
  const conns = new Map<string, ConnSpan>();
  const flows = new Map<string, LiveFlow>();
  const occurrences = new Map<string, number>();
  // Hashes of embedded key logs, with the blob they were embedded in.
  // Each keeps its own blob across restarts: counted from the replay point instead, it would be forgotten
  // once the replay point moves past that, and a later restart replaying its flow would embed it again.
  const embedded = new Map<string, number>(
    (prior?.embedded ?? []).map((h, i) => [h, prior?.embeddedSeqs?.[i] ?? replay[0]?.seq ?? 0]),
  );
  let scratch = new Uint8Array(2048);

  const sink: FlowAwareFrameSink = {
    begin: (length) => options.sink.begin(length),
    commit: (ts, offsetNs, originalLength) => options.sink.commit(ts, offsetNs, originalLength),
    forFlow(context: FrameFlowContext) {
      const base = `${context.connId}/${context.variant}${context.plain ? "+plain" : ""}`;
      const occurrence = occurrences.get(base) ?? 0;
      occurrences.set(base, occurrence + 1);
      const key = `${base}#${occurrence}`;
      const mark = priorFlows.get(key);
      const live: LiveFlow = { frames: 0, ended: false };
      flows.set(key, live);
      const inner: FrameSink & { end?(): void } = isFlowAware(options.sink)
        ? options.sink.forFlow(context)
        : options.sink;
      // A flow that had ended, met again in a replayed blob, is its tail: nothing of it is written.
      const skip =
        mark === undefined ? 0 : mark.ended && replaying() ? Number.POSITIVE_INFINITY : mark.frames;
      let skipping = false;
      return {
        begin(length: number) {
          skipping = live.frames < skip;
          if (!skipping) return inner.begin(length);
          if (scratch.length < length) scratch = new Uint8Array(length * 2);
          return scratch.subarray(0, length);
        },
        commit(ts: bigint, offsetNs?: number, originalLength?: number) {
          live.frames++;
          if (skipping) {
            skippedFrames++;
            return;
          }
          inner.commit(ts, offsetNs, originalLength);
        },
        end() {
          live.ended = true;
          if (inner !== options.sink) inner.end?.();
        },
      };
    },
  };
  const embedKeys = (text: string) => {
    const hash = hashText(text);
    if (embedded.has(hash)) return;
    embedded.set(hash, currentSeq());
    options.embedKeys?.(text);
  };
  const stitcher = options.createStitcher(sink, embedKeys);
  // Which blobs each connection has records in: the replay point is the oldest of the held ones.
  const accept = stitcher.accept.bind(stitcher);
  stitcher.accept = (record: TapRecord) => {
    const seq = currentSeq();
    const span = conns.get(record.connId);
    if (span) span.last = seq;
    else conns.set(record.connId, { first: seq, last: seq });
    accept(record);
  };

  const replaySources = (async function* (): AsyncGenerator<BlobSource & { seq: number }> {
    for (const r of replay) {
      const store = r.kind === "keys" ? (options.keyStore ?? options.store) : options.store;
      yield {
        key: r.key,
        seq: r.seq,
        ...(r.kind ? { kind: r.kind } : {}),
        read: () => store.read(r.key),
        readBytes: (o) => store.readBytes(r.key, o ?? {}),
      };
    }
  })();
  const fresh = followBlobs(options.store, {
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.keyStore ? { keyStore: options.keyStore } : {}),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    ...(options.latenessNs === undefined ? {} : { latenessNs: options.latenessNs }),
    ...(options.sinceNs === undefined ? {} : { sinceNs: options.sinceNs }),
    ...(cursorNs === undefined ? {} : { cursorNs }),
    seen,
    ...(options.signal ? { signal: options.signal } : {}),
    // The store is quiet and every blob handed out is done: the job waits for the next one, a checkpoint
    // now catches what the last blobs wrote.
    onPoll: async (poll) => {
      if (poll.released === 0 && inFlight.length === 0 && dirty) await checkpoint();
    },
  });
  let savedAtStop = false;
  const blobs = (async function* () {
    for await (const b of replaySources) {
      inFlight.push(b.seq);
      yield b;
    }
    for await (const b of fresh) {
      inFlight.push(nextSeq++);
      yield b;
    }
    // Stopped: the state as it stands, before the job completes the flows it holds (each blob handed out
    // is done: the job reads none ahead).
    if (options.signal?.aborted && inFlight.length === 0) {
      await checkpoint();
      savedAtStop = true;
    }
  })();

  const latenessNs = options.latenessNs ?? 120_000_000_000n;
  let lastCheckpoint = now();
  const checkpointMs = options.checkpointMs ?? 1000;

  async function checkpoint(): Promise<void> {
    for (const c of options.output.flush()) await options.write.write(c);
    const outputs = await options.syncOutputs();
    // The replay point: the first blob of the oldest connection the stitcher still holds.
    let from = nextSeq;
    for (const [connId, span] of conns)
      if (span.first < from && stitcher.holdsConnection(connId)) from = span.first;
    const keep = new Set<string>();
    for (const [connId, span] of conns) {
      if (span.last >= from || stitcher.holdsConnection(connId)) keep.add(connId);
      else conns.delete(connId);
    }
    const marks: Record<string, FollowFlowMark> = {};
    for (const [key, live] of flows) {
      const connId = key.slice(0, key.indexOf("/"));
      if (!keep.has(connId)) {
        flows.delete(key);
        continue;
      }
      marks[key] = { frames: live.frames, ended: live.ended };
    }
    for (const [hash, seq] of embedded) if (seq < from) embedded.delete(hash);
    while (stitched.length > 0 && stitched[0]!.seq < from) stitched.shift();
    if (cursorNs !== undefined) {
      const floor = cursorNs - latenessNs;
      for (const key of seen) {
        const start = parseBlobKey(key)?.startNs;
        if (start !== undefined && start < floor) seen.delete(key);
      }
    }
    const state: FollowState = {
      version: FOLLOW_STATE_VERSION,
      nextSeq,
      blobsStitched,
      ...(cursorNs === undefined ? {} : { cursorNs: cursorNs.toString() }),
      seen: [...seen],
      replay: [...stitched],
      flows: marks,
      embedded: [...embedded.keys()],
      embeddedSeqs: [...embedded.values()],
      outputs,
    };
    await options.saveState(state);
    checkpoints++;
    dirty = false;
    lastCheckpoint = now();
  }

  const job = await runStitchJob({
    blobs,
    stitcher,
    output: options.output,
    sink: options.write,
    // No read-ahead: it waits for `depth` more blobs before handing one out, and in a store that fills
    // slowly the last blobs landed would wait for the next ones.
    prefetch: 0,
    ...(options.onCorruption ? { onCorruption: options.onCorruption } : {}),
    ...(options.onKeyLog ? { onKeyLog: options.onKeyLog } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    onBlobDone: async (blob) => {
      const seq = inFlight.shift() ?? nextSeq;
      dirty = true;
      if (seq >= replayEnd) {
        blobsStitched++;
        stitched.push({ key: blob.key, seq, ...(blob.kind === "keys" ? { kind: "keys" as const } : {}) });
        seen.add(blob.key);
        const start = parseBlobKey(blob.key)?.startNs;
        if (start !== undefined && (cursorNs === undefined || start > cursorNs)) cursorNs = start;
      }
      if (now() - lastCheckpoint >= checkpointMs) await checkpoint();
    },
  });
  if (!savedAtStop) await checkpoint();
  return { job, stitcher, replayedBlobs: replay.length, skippedFrames, checkpoints };
}
