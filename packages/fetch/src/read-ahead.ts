/**
 * Read-ahead: the next blobs are fetched whole while the current one is decoded and stitched, so storage
 * latency overlaps with CPU work. Used by the one-thread stitch job, the worker-thread coordinator and the
 * mesh's fetcher.
 *
 * Buffer reuse: a consumer that is done with a blob's bytes calls `release()`, and the buffer serves a later
 * blob. Fresh buffers for every blob cost page faults and, being external memory, force full garbage
 * collections. Whoever keeps bytes beyond `release()` must copy them.
 *
 * A read that fails is not thrown here: it is thrown by that blob's `chunks()` / `whole()` when its turn
 * comes, so the caller reports it with the blob's name and goes on.
 *
 * Bounds: at most `depth` blobs ahead of the one handed out, and, with `budgetBytes`, at most that many
 * bytes of whole reads in flight or waiting ahead of it (a blob that does not fit waits until earlier ones
 * are handed out; the next blob is always read, whatever its size). A remote store has latency per read, so
 * many small reads in flight keep it busy (e.g. depth 64, 64 MiB); a directory needs few (depth 2, the
 * default, with no byte bound).
 */
import type { BlobSource } from "./blob-source.js";

export interface ReadAheadOptions {
  /** Blobs read ahead of the one handed out (default 2; 0: none, each blob streams when its turn comes). */
  readonly depth?: number;
  /** Only blobs of a known size up to this many bytes are read ahead whole (default 64 MiB). */
  readonly maxBytes?: number;
  /**
   * The bytes (known sizes) of whole reads ahead of the one handed out: in flight or done, not yet handed
   * out. Default: no bound beyond `depth` blobs of at most `maxBytes` each.
   */
  readonly budgetBytes?: number;
  /** Read every blob whole, whatever its size (the worker threads share whole buffers). Default false. */
  readonly alwaysWhole?: boolean;
  /**
   * Where whole reads go (e.g. shared memory). Default: a pool of reused `ArrayBuffer`s, refilled by
   * `release()`.
   */
  readonly allocate?: (size: number) => Uint8Array;
  /** Called by `release()` with a buffer that `allocate` gave (default: back into the built-in pool). */
  readonly recycle?: (buffer: ArrayBufferLike) => void;
  readonly signal?: AbortSignal;
}

export interface FetchedBlob {
  readonly blob: BlobSource;
  /** The blob's bytes: the read-ahead's whole read, or a stream from its source. */
  chunks(): AsyncIterable<Uint8Array>;
  /** The blob's bytes in one buffer. */
  whole(): Promise<Uint8Array>;
  /** The consumer is done with the bytes: their buffer may be reused. */
  release(): void;
}

export const DEFAULT_READ_AHEAD_DEPTH = 2;
export const DEFAULT_READ_AHEAD_MAX_BYTES = 64 * 1024 * 1024;

export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of source) out.push(c);
  return out;
}

/** The blobs of `blobs`, in order, each handed out with its bytes read ahead (see the module comment). */
export async function* readAhead(
  blobs: AsyncIterable<BlobSource> | Iterable<BlobSource>,
  options: ReadAheadOptions = {},
): AsyncGenerator<FetchedBlob> {
  const depth = Math.max(0, options.depth ?? DEFAULT_READ_AHEAD_DEPTH);
  const maxAhead = options.maxBytes ?? DEFAULT_READ_AHEAD_MAX_BYTES;
  const spare: ArrayBuffer[] = [];
  const poolAllocate = (size: number): Uint8Array => {
    const at = spare.findIndex((b) => b.byteLength >= size);
    if (at >= 0) return new Uint8Array(spare.splice(at, 1)[0]!);
    return new Uint8Array(size + (size >> 3));
  };
  const allocate = options.allocate ?? poolAllocate;
  const recycle =
    options.recycle ??
    ((buffer: ArrayBufferLike) => {
      if (buffer instanceof ArrayBuffer && buffer.byteLength > 0 && spare.length < depth + 2)
        spare.push(buffer);
    });
  const iterator = Symbol.asyncIterator in blobs ? blobs[Symbol.asyncIterator]() : blobs[Symbol.iterator]();
  const budget = options.budgetBytes ?? Number.POSITIVE_INFINITY;
  interface Ahead {
    readonly blob: BlobSource;
    /** Read whole (started when the budget allows), or streamed when its turn comes. */
    readonly whole: boolean;
    readonly pooled: boolean;
    /** The bytes this entry holds against the budget once started. */
    readonly cost: number;
    bytes: Promise<Uint8Array[]> | undefined;
  }
  const ahead: Ahead[] = [];
  /** Bytes of the started whole reads in `ahead`. */
  let aheadBytes = 0;
  let exhausted = false;
  const start = (entry: Ahead) => {
    const { blob } = entry;
    entry.bytes = blob.readBytes ? blob.readBytes({ allocate }).then((b) => [b]) : collect(blob.read());
    entry.bytes.catch(() => {}); // thrown when the blob's turn comes
    aheadBytes += entry.cost;
  };
  /** Starts waiting whole reads in order while they fit the budget (the first one always). */
  const startWithinBudget = () => {
    for (let i = 0; i < ahead.length; i++) {
      const entry = ahead[i]!;
      if (!entry.whole || entry.bytes) continue;
      if (i > 0 && aheadBytes + entry.cost > budget) return;
      start(entry);
    }
  };
  const fill = async () => {
    while (!exhausted && ahead.length <= depth) {
      const r = await iterator.next();
      if (r.done) {
        exhausted = true;
        break;
      }
      const blob = r.value;
      const whole =
        options.alwaysWhole === true || (depth > 0 && blob.size !== undefined && blob.size <= maxAhead);
      ahead.push({
        blob,
        whole,
        pooled: whole && blob.readBytes !== undefined,
        cost: whole ? (blob.size ?? 0) : 0,
        bytes: undefined,
      });
      startWithinBudget();
    }
    startWithinBudget();
  };
  try {
    for (;;) {
      await fill();
      const next = ahead.shift();
      if (!next) return;
      // The first entry is always started (startWithinBudget); handed out, it leaves the budget.
      if (next.whole && !next.bytes) start(next);
      if (next.bytes) aheadBytes -= next.cost;
      options.signal?.throwIfAborted();
      const { blob, bytes, pooled } = next;
      let released = false;
      yield {
        blob,
        chunks: bytes
          ? async function* () {
              yield* await bytes;
            }
          : () => blob.read(),
        whole: async () => joinChunks(bytes ? await bytes : await collect(blob.read())),
        release: () => {
          if (released || !bytes || !pooled) return;
          released = true;
          // A read that failed has no buffer to give back.
          bytes.then(
            (chunks) => {
              for (const c of chunks) recycle(c.buffer);
            },
            () => {},
          );
        },
      };
    }
  } finally {
    await iterator.return?.();
  }
}
