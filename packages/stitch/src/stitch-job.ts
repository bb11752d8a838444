/**
 * One stitch run over a set of blobs: decode each blob, feed its records to the stitcher, pass the encoded
 * output on to a byte sink as it fills, and report what happened. Blobs are processed in the order given
 * (key order when listed from a store); the flow table copes with any order of records across blobs.
 * While the blobs come in start-time order (as `sortBlobsByTime` gives), they give the stitcher's time order
 * its watermark (`noRecordsBefore`): no record to come is older than the next blob's start, nor (within a
 * blob, written as its chunks complete) than the newest record read less the longest span.
 *
 * A damaged blob never stops the run. In `resync` mode (the default) every frame that passes its checksums
 * is used and the damaged regions are reported; in `skip-rest` mode the blob's records after the first error
 * are not trusted. Either way the blob is named in the report and counted.
 */
import {
  type BlobProblem,
  type BlobSource,
  type FetchedBlob,
  inflateKeyLog,
  isFetchError,
  readAhead,
} from "@cloudtap/fetch";
import { CtapReadStats, isCtapError, parseBlobKey, readCtap } from "@cloudtap/tap-format";
import type { Stitcher } from "./stitcher.js";
import { BlobTimeGuard, type TimeSanityOptions } from "./time-sanity.js";

export interface ChunkedOutput {
  /** Full output chunks so far. */
  drain(): Uint8Array[];
  /** All output so far. */
  flush(): Uint8Array[];
}

export interface OutputSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

export interface StitchJobOptions {
  readonly blobs: AsyncIterable<BlobSource>;
  readonly stitcher: Stitcher;
  readonly output: ChunkedOutput;
  readonly sink: OutputSink;
  readonly onCorruption?: "resync" | "skip-rest";
  /**
   * Which frames of each blob this job takes (see @cloudtap/tap-format `select`): one of several jobs that
   * share the blobs, each stitching a shard of the connections. Default: all of them.
   */
  readonly select?: (frameType: number, body: Uint8Array) => boolean;
  /** Blobs read ahead while the current one is stitched (default 2), each at most `prefetchMaxBytes` (64 MiB). */
  readonly prefetch?: number;
  readonly prefetchMaxBytes?: number;
  /** Bytes read ahead at most (whole reads in flight or waiting; default: no bound beyond `prefetch`). */
  readonly prefetchBudgetBytes?: number;
  /**
   * Receives each key log met among the blobs (kind "keys"), whole and decompressed, when it lands; the job
   * then tells the stitcher (`keysAdded`) so connections waiting for those keys continue.
   */
  readonly onKeyLog?: (key: string, text: Uint8Array) => void;
  readonly onProgress?: (progress: StitchProgress) => void;
  /**
   * Awaited after each blob (data or key log) is stitched and its full output chunks written: where a
   * continuous run checkpoints (docs/stitching.md, "Continuous mode").
   */
  readonly onBlobDone?: (blob: BlobSource) => void | Promise<void>;
  /**
   * Where the time-order watermark comes from: "record" (default), the newest record of the blob being
   * read, bounded by the next blob's start when the read-ahead has it; "blob", each blob's start only (the
   * same for every job that reads the same blobs: worker threads whose outputs are merged).
   */
  readonly watermark?: "record" | "blob";
  /** Checked between blobs and inside long reads; the run then throws the signal's reason. */
  readonly signal?: AbortSignal;
  /** Caps on a compressed blob (see @cloudtap/tap-format `maxCompressedBytes`, `maxInflatedBytes`). */
  readonly maxCompressedBytes?: number;
  readonly maxInflatedBytes?: number;
  /** How far from its blob's start time a record may be stamped (docs/tap-format.md 5.1). */
  readonly timeSanity?: TimeSanityOptions;
}

export interface StitchProgress {
  blobs: number;
  blobBytes: number;
  records: number;
  payloadBytes: number;
  outputBytes: number;
}

export interface StitchJobReport extends StitchProgress {
  readonly problems: readonly BlobProblem[];
  readonly problemCounts: Readonly<Record<string, number>>;
  readonly unknownFrames: number;
}

let lastTurn = Date.now();

/** Blobs already in memory are stitched without the event loop turning: turn it every 50 ms (signals). */
async function turnIfDue(signal: AbortSignal | undefined): Promise<void> {
  if (Date.now() - lastTurn < 50) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  lastTurn = Date.now();
  signal?.throwIfAborted();
}

export async function runStitchJob(o: StitchJobOptions): Promise<StitchJobReport> {
  const progress: StitchProgress = { blobs: 0, blobBytes: 0, records: 0, payloadBytes: 0, outputBytes: 0 };
  const problems: BlobProblem[] = [];
  let unknownFrames = 0;
  const resync = (o.onCorruption ?? "resync") === "resync";
  const pass = async (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      progress.outputBytes += c.length;
      await o.sink.write(c);
    }
  };
  const takeKeyLog = async (fetched: FetchedBlob) => {
    try {
      const key = fetched.blob.key;
      o.onKeyLog?.(key, await inflateKeyLog(key, await fetched.whole()));
      o.stitcher.keysAdded();
    } catch (err) {
      if (o.signal?.aborted) throw err;
      problems.push({
        blob: fetched.blob.key,
        kind: isFetchError(err) ? err.code : "read-failed",
        message: err instanceof Error ? err.message : String(err),
      });
    }
    fetched.release();
    await pass(o.output.drain());
    await o.onBlobDone?.(fetched.blob);
  };
  // Read-ahead with buffer reuse (@cloudtap/fetch): a blob's buffer is released once it is stitched, since
  // the stitcher copies whatever it keeps beyond a call (the contract of Stitcher.accept).
  let lastStartNs: bigint | undefined = -1n;
  // The blobs handed to the read-ahead, in order: the one after the current one gives the watermark's bound.
  const pulled: BlobSource[] = [];
  let pulledAll = false;
  const perRecord = (o.watermark ?? "record") === "record";
  const source = perRecord
    ? (async function* () {
        for await (const b of o.blobs) {
          pulled.push(b);
          yield b;
        }
        pulledAll = true;
      })()
    : o.blobs;
  /** The start of the next data blob after `blob`; undefined: not known; -1n: there is none. */
  const nextStartOf = (blob: BlobSource): bigint | undefined => {
    while (pulled.length > 0 && pulled[0] !== blob) pulled.shift();
    for (let i = 1; i < pulled.length; i++) {
      if (pulled[i]!.kind === "keys") continue;
      return parseBlobKey(pulled[i]!.key)?.startNs;
    }
    return pulledAll ? -1n : undefined;
  };
  for await (const next of readAhead(source, {
    depth: o.prefetch ?? 2,
    ...(o.prefetchMaxBytes === undefined ? {} : { maxBytes: o.prefetchMaxBytes }),
    ...(o.prefetchBudgetBytes === undefined ? {} : { budgetBytes: o.prefetchBudgetBytes }),
    ...(o.signal ? { signal: o.signal } : {}),
  })) {
    const blob = next.blob;
    if (blob.kind === "keys") {
      await takeKeyLog(next);
      continue;
    }
    const startNs = parseBlobKey(blob.key)?.startNs;
    if (startNs !== undefined && lastStartNs !== undefined && startNs >= lastStartNs) {
      lastStartNs = startNs;
      o.stitcher.noRecordsBefore(startNs);
    } else if (lastStartNs !== undefined) {
      // Not in start-time order (or not named by time): the start times say nothing of what is to come.
      lastStartNs = undefined;
      o.stitcher.noRecordsBefore(undefined);
    }
    // Within the blob: the newest record read, bounded by the next blob's start (records of later blobs are
    // at least that new); unknown next blob: the blob's own start only.
    let bound = perRecord && lastStartNs !== undefined ? nextStartOf(blob) : undefined;
    if (bound !== undefined && bound !== -1n && startNs !== undefined && bound < startNs) bound = undefined;
    let newestNs = startNs ?? -1n;
    const advance = () => {
      if (bound === undefined || lastStartNs === undefined) return;
      o.stitcher.noRecordsBefore(bound !== -1n && bound < newestNs ? bound : newestNs);
    };
    const stats = new CtapReadStats();
    let bytes = 0;
    const source = next.chunks();
    const counted = (async function* () {
      for await (const c of source) {
        bytes += c.length;
        yield c;
      }
    })();
    let sinceDrain = 0;
    let guard: BlobTimeGuard | undefined;
    try {
      for await (const item of readCtap(counted, {
        onCorruption: resync ? "resync" : "throw",
        stats,
        ...(o.select ? { select: o.select } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.maxCompressedBytes === undefined ? {} : { maxCompressedBytes: o.maxCompressedBytes }),
        ...(o.maxInflatedBytes === undefined ? {} : { maxInflatedBytes: o.maxInflatedBytes }),
      })) {
        switch (item.type) {
          case "header":
            guard = new BlobTimeGuard(item.header.startNs, o.stitcher.table.now, o.timeSanity);
            break;
          case "blob-end":
            break;
          case "corruption":
            problems.push({
              blob: blob.key,
              kind: item.error.code,
              message: item.error.message,
              ...(item.withinFrame ? { withinFrame: true } : {}),
            });
            break;
          default: {
            const record = guard ? guard.check(item) : item;
            o.stitcher.accept(record);
            progress.records++;
            if (record.timestampNs > newestNs) newestNs = record.timestampNs;
            if (item.type === "data" || item.type === "datagram") {
              progress.payloadBytes += item.payload.length;
              sinceDrain += item.payload.length;
              if (sinceDrain >= 1 << 20) {
                sinceDrain = 0;
                advance();
                await pass(o.output.drain());
              }
            }
          }
        }
      }
    } catch (err) {
      if (isCtapError(err)) problems.push({ blob: blob.key, kind: err.code, message: err.message });
      else if (o.signal?.aborted) throw err;
      else
        problems.push({
          blob: blob.key,
          kind: "read-failed",
          message: err instanceof Error ? err.message : String(err),
        });
    }
    const outOfRange = guard?.describe();
    // Only the records of frames this job selected: with several jobs per blob, each reports its own.
    if (outOfRange)
      problems.push({ blob: blob.key, kind: "time-out-of-range", message: outOfRange, withinFrame: true });
    unknownFrames += stats.unknownFrames;
    progress.blobs++;
    progress.blobBytes += bytes;
    advance();
    o.stitcher.flushOlderThan();
    await pass(o.output.drain());
    next.release();
    o.onProgress?.(progress);
    await o.onBlobDone?.(blob);
    await turnIfDue(o.signal);
  }
  o.stitcher.flushAll();
  await pass(o.output.flush());
  const problemCounts: Record<string, number> = {};
  for (const p of problems) problemCounts[p.kind] = (problemCounts[p.kind] ?? 0) + 1;
  return { ...progress, problems, problemCounts, unknownFrames };
}
