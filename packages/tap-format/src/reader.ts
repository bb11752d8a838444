/**
 * The streaming CTAP reader: an async generator over any `AsyncIterable<Uint8Array>` (a file stream, an
 * object-store read, a NATS message body) built on the pure peek functions.
 *
 * - Frame lengths are checked against `maxFrameBytes` before a byte of the body is buffered.
 * - Payloads are views into the input chunks when a frame lies inside one chunk, else into one copy of
 *   exactly that frame: copy what you keep beyond the current iteration step.
 * - Unknown frame types are skipped and counted (forward compatibility).
 * - `onCorruption: "throw"` (the default) reports the first error and trusts no byte after it.
 *   `"resync"` yields a `corruption` item instead and continues at the next valid frame (docs/tap-format.md,
 *   "Resynchronisation"): a frame whose header checksum is good but whose body is bad is skipped whole;
 *   otherwise the reader scans forward for the next sync word with a valid header checksum.
 * - A blob that ends at a frame boundary without its blob-end frame fails with MissingTrailerError.
 */
import { DecompressionStream, ReadableStream } from "node:stream/web";
import { ByteQueue } from "./byte-queue.js";
import { crc32 } from "./crc32.js";
import {
  BadHeaderError,
  ChecksumMismatchError,
  CtapError,
  DecompressError,
  isCtapError,
  MalformedRecordError,
  MissingTrailerError,
  TruncatedFrameError,
} from "./errors.js";
import { FRAME_SYNC_BYTE0, Frame, Header, MAX_FRAME_BODY_BYTES } from "./layout.js";
import { parseFrameHeader, peekHeader } from "./peek.js";
import {
  decodeBlobEnd,
  decodeConnClose,
  decodeConnOpen,
  decodeData,
  decodeDatagram,
} from "./record-codec.js";
import { type BlobEndRecord, type BlobHeader, Compression, FrameType, type TapRecord } from "./records.js";

export interface HeaderItem {
  readonly type: "header";
  readonly header: BlobHeader;
}

/** In resync mode: a region the reader could not trust and skipped. */
export interface CorruptionItem {
  readonly type: "corruption";
  readonly error: CtapError;
  /** Bytes skipped from the error's offset until the next valid frame (or the end). */
  readonly skippedBytes: number;
  /**
   * True when the damage is inside one frame whose header was sound (its body checksum or fields): the
   * frames around it were read normally. With `select`, only a reader that selected the frame reports it.
   */
  readonly withinFrame?: boolean;
}

export type CtapItem = HeaderItem | TapRecord | BlobEndRecord | CorruptionItem;

export interface CtapReadOptions {
  /** Largest frame body accepted; larger declared lengths are an OversizedFrameError. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  readonly onCorruption?: "throw" | "resync";
  /** Counters, updated as the reader goes; pass your own object to read them during and after. */
  readonly stats?: CtapReadStats;
  /**
   * Which frames to verify and decode, asked after a frame's header checked out and before its body is
   * verified: frames it rejects are stepped over by their length, unverified and undecoded (counted in
   * `stats.notSelected`), and never reported. For readers that share one blob, each taking a part (a shard
   * of the connections: `connShard`). The header and the blob's framing are checked by every reader alike,
   * so all of them step through the same frames.
   */
  readonly select?: (frameType: number, body: Uint8Array) => boolean;
}

export class CtapReadStats {
  frames = 0;
  connOpen = 0;
  data = 0;
  datagram = 0;
  connClose = 0;
  unknownFrames = 0;
  /** Frame type code -> how many frames of it were skipped. */
  readonly unknownTypes = new Map<number, number>();
  payloadBytes = 0;
  corruptions = 0;
  skippedBytes = 0;
  /** Set when the blob-end frame's frame count differs from the frames read (resync mode only). */
  frameCountMismatch = false;
  trailer = false;
  /** Frames stepped over because `select` did not take them. */
  notSelected = 0;
}

async function* gunzip(chunks: AsyncIterable<Uint8Array>, sourceFailed: { error?: unknown }) {
  async function* guarded() {
    try {
      yield* chunks;
    } catch (err) {
      sourceFailed.error = err;
      throw err;
    }
  }
  const rs = ReadableStream.from(guarded()).pipeThrough(new DecompressionStream("gzip"));
  for await (const c of rs) yield c as Uint8Array;
}

class Input {
  ended = false;
  constructor(
    readonly q: ByteQueue,
    private readonly it: AsyncIterator<Uint8Array>,
    private readonly wrapError?: (err: unknown) => unknown,
  ) {}
  /** Pulls one more chunk; false at the end of the input. */
  async pull(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Uint8Array>;
    try {
      r = await this.it.next();
    } catch (err) {
      throw this.wrapError ? this.wrapError(err) : err;
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.q.push(r.value);
    return true;
  }
  /** Makes at least `n` bytes available; false if the input ends first. */
  async ensure(n: number): Promise<boolean> {
    while (this.q.available < n) if (!(await this.pull())) return false;
    return true;
  }
  async close(): Promise<void> {
    if (!this.ended) await this.it.return?.();
  }
}

async function* gather(first: Uint8Array[], rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* first;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

/** Iterates a sync iterable as an async one, so arrays of chunks can be read too. */
async function* fromSync(source: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* source;
}

export async function* readCtap(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: CtapReadOptions = {},
): AsyncGenerator<CtapItem, void, undefined> {
  const maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BODY_BYTES;
  const resync = options.onCorruption === "resync";
  const stats = options.stats ?? new CtapReadStats();
  const raw = (Symbol.asyncIterator in source ? source : fromSync(source))[Symbol.asyncIterator]();
  const first = new Input(new ByteQueue(), raw);
  let input = first;
  try {
    // The header: always fatal when bad, since nothing after it can be interpreted.
    let header: BlobHeader;
    for (;;) {
      const q = input.q;
      const p = peekHeader(q.peek(Math.min(q.available, Header.maxBytes)));
      if (p.kind === "invalid") throw p.error;
      if (p.kind === "header") {
        q.skip(p.size);
        header = p.header;
        break;
      }
      if (!(await input.pull())) throw new TruncatedFrameError(q.available, p.need, 0);
    }
    yield { type: "header", header };

    if (header.compression !== Compression.None) {
      // Zstd is reserved in the format (docs/tap-format.md) but this reader has no decoder for it yet.
      if (header.compression !== Compression.Gzip) {
        throw new BadHeaderError(
          `compression ${header.compression} is not supported by this reader`,
          Header.flags,
        );
      }
      const failed: { error?: unknown } = {};
      const plain = gunzip(gather(input.q.drain(), raw), failed)[Symbol.asyncIterator]();
      const q = new ByteQueue();
      q.position = header.headerBytes;
      input = new Input(q, plain, (err) =>
        failed.error !== undefined ? err : new DecompressError(q.position + q.available, err),
      );
    }

    yield* readFrames(input, maxFrameBytes, resync, stats, options.select);
  } finally {
    // Release the source when the consumer stops early (break, throw) or the blob ended before the input did.
    await input.close().catch(() => {});
    if (input !== first) await first.close().catch(() => {});
  }
}

async function* readFrames(
  input: Input,
  maxFrameBytes: number,
  resync: boolean,
  stats: CtapReadStats,
  select: CtapReadOptions["select"],
): AsyncGenerator<CtapItem, void, undefined> {
  const q = input.q;
  let frameIndex = 0;

  // Resync mode only: skip forward from a bad frame header to the next plausible frame.
  async function* scan(error: CtapError): AsyncGenerator<CorruptionItem, void, undefined> {
    let skipped = 1;
    q.skip(1);
    for (;;) {
      const hit = q.indexOf(FRAME_SYNC_BYTE0, 0);
      if (hit < 0) {
        skipped += q.available;
        q.skip(q.available);
        if (!(await input.pull())) break;
        continue;
      }
      q.skip(hit);
      skipped += hit;
      if (!(await input.ensure(Frame.headerBytes))) {
        skipped += q.available;
        q.skip(q.available);
        break;
      }
      if (!(parseFrameHeader(q.peek(Frame.headerBytes), 0, maxFrameBytes, 0) instanceof CtapError)) break;
      q.skip(1);
      skipped++;
    }
    stats.corruptions++;
    stats.skippedBytes += skipped;
    yield { type: "corruption", error, skippedBytes: skipped };
  }

  for (;;) {
    if (!(await input.ensure(Frame.headerBytes))) {
      if (q.available > 0) {
        const err = new TruncatedFrameError(q.available, Frame.headerBytes, q.position);
        if (!resync) throw err;
        stats.corruptions++;
        stats.skippedBytes += q.available;
        yield { type: "corruption", error: err, skippedBytes: q.available };
        q.skip(q.available);
      }
      const err = new MissingTrailerError(q.position);
      if (!resync) throw err;
      stats.corruptions++;
      yield { type: "corruption", error: err, skippedBytes: 0 };
      return;
    }
    const at = q.position;
    const head = parseFrameHeader(q.peek(Frame.headerBytes), 0, maxFrameBytes, at);
    if (head instanceof CtapError) {
      if (!resync) throw head;
      yield* scan(head);
      continue;
    }
    const size = Frame.headerBytes + head.bodyLength;
    if (!(await input.ensure(size))) {
      const err = new TruncatedFrameError(q.available, size, at);
      if (!resync) throw err;
      stats.corruptions++;
      stats.skippedBytes += q.available;
      yield { type: "corruption", error: err, skippedBytes: q.available };
      q.skip(q.available);
      continue; // reports the missing trailer next
    }
    const body = q.take(size).subarray(Frame.headerBytes);
    const type = head.type;
    if (select !== undefined && type !== FrameType.BlobEnd && !select(type, body)) {
      stats.notSelected++;
      frameIndex++;
      stats.frames++;
      continue;
    }
    if (crc32(body) !== head.bodyCrc) {
      const err = new ChecksumMismatchError("frame body", at);
      if (!resync) throw err;
      stats.corruptions++;
      stats.skippedBytes += size;
      yield { type: "corruption", error: err, skippedBytes: size, withinFrame: true };
      continue;
    }
    const bodyAt = at + Frame.headerBytes;
    let item: TapRecord | BlobEndRecord | undefined;
    try {
      switch (type) {
        case FrameType.ConnOpen:
          item = decodeConnOpen(body, bodyAt);
          stats.connOpen++;
          break;
        case FrameType.Data:
          item = decodeData(body, bodyAt);
          stats.data++;
          stats.payloadBytes += item.payload.length;
          break;
        case FrameType.Datagram:
          item = decodeDatagram(body, bodyAt);
          stats.datagram++;
          stats.payloadBytes += item.payload.length;
          break;
        case FrameType.ConnClose:
          item = decodeConnClose(body, bodyAt);
          stats.connClose++;
          break;
        case FrameType.BlobEnd:
          item = decodeBlobEnd(body, bodyAt);
          break;
        default:
          stats.unknownFrames++;
          stats.unknownTypes.set(type, (stats.unknownTypes.get(type) ?? 0) + 1);
      }
    } catch (err) {
      if (!resync || !isCtapError(err)) throw err;
      stats.corruptions++;
      stats.skippedBytes += size;
      yield { type: "corruption", error: err, skippedBytes: size, withinFrame: true };
      continue;
    }
    if (item?.type === "blob-end") {
      if (item.frameCount !== frameIndex) {
        if (!resync) {
          throw new MalformedRecordError(
            `blob-end counts ${item.frameCount} frames, read ${frameIndex}`,
            bodyAt,
          );
        }
        stats.frameCountMismatch = true;
      }
      stats.trailer = true;
      yield item;
      return; // Nothing after the blob-end frame is read.
    }
    frameIndex++;
    stats.frames++;
    if (item) yield item;
  }
}

/** Reads a whole blob held in memory. */
export function readCtapBytes(bytes: Uint8Array, options?: CtapReadOptions): AsyncGenerator<CtapItem> {
  return readCtap([bytes], options);
}
