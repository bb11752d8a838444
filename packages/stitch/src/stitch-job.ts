/**
 * One stitch run over a set of blobs: decode each blob, feed its records to the stitcher, pass the encoded
 * output on to a byte sink as it fills, and report what happened. Blobs are processed in the order given
 * (key order when listed from a store); the flow table copes with any order of records across blobs.
 *
 * A damaged blob never stops the run. In `resync` mode (the default) every frame that passes its checksums
 * is used and the damaged regions are reported; in `skip-rest` mode the blob's records after the first error
 * are not trusted. Either way the blob is named in the report and counted.
 */
import { DecompressionStream, ReadableStream } from "node:stream/web";
import { CtapReadStats, isCtapError, readCtap } from "@cloudtap/tap-format";
import type { Stitcher } from "./stitcher.js";

export interface BlobSource {
  /** The blob's name in reports (its object key or file name). */
  readonly key: string;
  /** A data blob (default) or a key log that lands in the stream of blobs (see `onKeyLog`). */
  readonly kind?: "data" | "keys";
  /** Size in bytes when known; blobs up to `prefetchMaxBytes` are read ahead whole. */
  readonly size?: number;
  read(): AsyncIterable<Uint8Array>;
  /**
   * The whole blob in one read, when the source can do that cheaply (used for read-ahead); `allocate` as in
   * @cloudtap/object-store's `readBytes`.
   */
  readBytes?(options?: { readonly allocate?: (size: number) => Uint8Array }): Promise<Uint8Array>;
}

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
  /**
   * Receives each key log met among the blobs (kind "keys"), whole and decompressed, when it lands; the job
   * then tells the stitcher (`keysAdded`) so connections waiting for those keys continue.
   */
  readonly onKeyLog?: (key: string, text: Uint8Array) => void;
  readonly onProgress?: (progress: StitchProgress) => void;
  readonly signal?: AbortSignal;
}

export interface StitchProgress {
  blobs: number;
  blobBytes: number;
  records: number;
  payloadBytes: number;
  outputBytes: number;
}

export interface BlobProblem {
  readonly blob: string;
  /** The CtapError code ("checksum-mismatch", "truncated-frame", ...) or "read-failed". */
  readonly kind: string;
  readonly message: string;
  /** The damage was inside one frame whose header was sound (only the job that selected the frame sees it). */
  readonly withinFrame?: boolean;
}

export interface StitchJobReport extends StitchProgress {
  readonly problems: readonly BlobProblem[];
  readonly problemCounts: Readonly<Record<string, number>>;
  readonly unknownFrames: number;
}

function joinChunks(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of ReadableStream.from([bytes]).pipeThrough(new DecompressionStream("gzip"))) {
    parts.push(c as Uint8Array);
  }
  return joinChunks(parts);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of source) out.push(c);
  return out;
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
  // Read-ahead: the next blobs are fetched whole while the current one is decoded and stitched, so storage
  // latency overlaps with CPU work. A read that fails is reported when its blob's turn comes.
  const depth = Math.max(0, o.prefetch ?? 2);
  const maxAhead = o.prefetchMaxBytes ?? 64 * 1024 * 1024;
  const ahead: { blob: BlobSource; bytes: Promise<Uint8Array[]> | undefined }[] = [];
  // Blob buffers are reused once their blob is stitched: the stitcher copies whatever it keeps beyond a call
  // (the contract of Stitcher.accept), so nothing refers to a blob's memory after its turn. Fresh buffers
  // for every blob cost page faults and, being external memory, force full garbage collections.
  const spare: ArrayBuffer[] = [];
  const allocate = (size: number): Uint8Array => {
    const at = spare.findIndex((b) => b.byteLength >= size);
    if (at >= 0) return new Uint8Array(spare.splice(at, 1)[0]!);
    return new Uint8Array(size + (size >> 3));
  };
  const reuse = (chunks: readonly Uint8Array[]) => {
    for (const c of chunks) {
      if (c.buffer instanceof ArrayBuffer && c.buffer.byteLength > 0 && spare.length < depth + 2)
        spare.push(c.buffer);
    }
  };
  const iterator = o.blobs[Symbol.asyncIterator]();
  let exhausted = false;
  const fill = async () => {
    while (!exhausted && ahead.length <= depth) {
      const r = await iterator.next();
      if (r.done) {
        exhausted = true;
        return;
      }
      const blob = r.value;
      const whole = depth > 0 && blob.size !== undefined && blob.size <= maxAhead;
      const bytes = whole
        ? blob.readBytes
          ? blob.readBytes({ allocate }).then((b) => [b])
          : collect(blob.read())
        : undefined;
      bytes?.catch(() => {}); // reported when the blob is processed
      ahead.push({ blob, bytes });
    }
  };
  for (;;) {
    await fill();
    const next = ahead.shift();
    if (!next) break;
    const blob = next.blob;
    o.signal?.throwIfAborted();
    if (blob.kind === "keys") {
      try {
        const bytes = next.bytes ? joinChunks(await next.bytes) : joinChunks(await collect(blob.read()));
        o.onKeyLog?.(blob.key, blob.key.endsWith(".gz") ? await gunzip(bytes) : bytes);
        o.stitcher.keysAdded();
      } catch (err) {
        if (o.signal?.aborted) throw err;
        problems.push({
          blob: blob.key,
          kind: "read-failed",
          message: err instanceof Error ? err.message : String(err),
        });
      }
      await pass(o.output.drain());
      continue;
    }
    const stats = new CtapReadStats();
    let bytes = 0;
    const source: AsyncIterable<Uint8Array> = next.bytes
      ? (async function* () {
          yield* await next.bytes!;
        })()
      : blob.read();
    const counted = (async function* () {
      for await (const c of source) {
        bytes += c.length;
        yield c;
      }
    })();
    let sinceDrain = 0;
    try {
      for await (const item of readCtap(counted, {
        onCorruption: resync ? "resync" : "throw",
        stats,
        ...(o.select ? { select: o.select } : {}),
      })) {
        switch (item.type) {
          case "header":
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
          default:
            o.stitcher.accept(item);
            progress.records++;
            if (item.type === "data" || item.type === "datagram") {
              progress.payloadBytes += item.payload.length;
              sinceDrain += item.payload.length;
              if (sinceDrain >= 1 << 20) {
                sinceDrain = 0;
                await pass(o.output.drain());
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
    unknownFrames += stats.unknownFrames;
    progress.blobs++;
    progress.blobBytes += bytes;
    o.stitcher.flushOlderThan();
    await pass(o.output.drain());
    // A read that failed was reported above; its buffer (if any) is simply not reused.
    if (next.bytes && blob.readBytes) reuse(await next.bytes.catch(() => []));
    o.onProgress?.(progress);
  }
  o.stitcher.flushAll();
  await pass(o.output.flush());
  const problemCounts: Record<string, number> = {};
  for (const p of problems) problemCounts[p.kind] = (problemCounts[p.kind] ?? 0) + 1;
  return { ...progress, problems, problemCounts, unknownFrames };
}
