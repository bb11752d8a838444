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
 * - Work per byte is bounded whatever the bytes: the resync search is synchronous over the bytes at hand,
 *   and long synchronous stretches turn the event loop at least every 50 ms (then `signal` is checked).
 *   A gzip blob's compressed and inflated sizes are capped (BlobTooLargeError).
 */
import { createInflateRaw } from "node:zlib";
import { ByteQueue } from "./byte-queue.js";
import { crc32 } from "./crc32.js";
import {
  BadHeaderError,
  BlobTooLargeError,
  ChecksumMismatchError,
  CtapError,
  DecompressError,
  isCtapError,
  MalformedRecordError,
  MissingTrailerError,
  TruncatedFrameError,
} from "./errors.js";
import { FRAME_SYNC_BYTE0, Frame, Header, MAX_FRAME_BODY_BYTES } from "./layout.js";
import { isValidFrameHeader, parseFrameHeader, peekHeader } from "./peek.js";
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
  /** A compressed blob's compressed bytes above this are a BlobTooLargeError. Default 256 MiB. */
  readonly maxCompressedBytes?: number;
  /** What a compressed blob's frame stream may inflate to; above it, a BlobTooLargeError. Default 256 MiB. */
  readonly maxInflatedBytes?: number;
  /**
   * Checked whenever the reader turns the event loop in a long synchronous stretch (at least every 50 ms):
   * once aborted, the read throws the signal's reason.
   */
  readonly signal?: AbortSignal;
}

export const DEFAULT_MAX_COMPRESSED_BLOB_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_INFLATED_BLOB_BYTES = 256 * 1024 * 1024;

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

/** Turn the event loop at least this often (ms) in a long synchronous stretch, so signals and I/O are seen. */
const TURN_EVERY_MS = 50;

/** A yield point for long synchronous work: turns the event loop when due, then checks the signal. */
class Turns {
  private last = Date.now();
  constructor(private readonly signal: AbortSignal | undefined) {}
  async maybe(): Promise<void> {
    if (Date.now() - this.last < TURN_EVERY_MS) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    this.last = Date.now();
    this.signal?.throwIfAborted();
  }
}

/**
 * Length of the gzip member header (RFC 1952 2.3) at the start of `b`, "incomplete" when more bytes are
 * needed, or an error message.
 */
function gzipHeaderLength(b: Uint8Array): number | "incomplete" | string {
  if (b.length < 10) return "incomplete";
  if (b[0] !== 0x1f || b[1] !== 0x8b) return "not a gzip stream";
  if (b[2] !== 8) return `gzip method ${b[2]} is not deflate`;
  const flags = b[3]!;
  let at = 10;
  if (flags & 4) {
    if (b.length < at + 2) return "incomplete";
    at += 2 + (b[at]! | (b[at + 1]! << 8));
  }
  for (const bit of [8, 16]) {
    if (!(flags & bit)) continue;
    const end = b.indexOf(0, at);
    if (end < 0) return b.length - at > 65536 ? "gzip name or comment too long" : "incomplete";
    at = end + 1;
  }
  if (flags & 2) at += 2;
  return b.length < at ? "incomplete" : at;
}

/**
 * Inflates one gzip member. Bytes after the member's deflate stream are ignored (as bytes after a blob-end
 * frame are: docs/tap-format.md 3.3), which the web DecompressionStream does not do: it fails and loses the
 * output it still held. The gzip trailer's CRC is not checked: every frame carries its own.
 */
async function* gunzip(
  chunks: AsyncIterable<Uint8Array>,
  sourceFailed: { error?: unknown },
  limits: { compressed: number; inflated: number; headerBytes: number },
): AsyncGenerator<Uint8Array> {
  const source = chunks[Symbol.asyncIterator]();
  let compressed = 0;
  const next = async (): Promise<Uint8Array | undefined> => {
    let r: IteratorResult<Uint8Array>;
    try {
      r = await source.next();
    } catch (err) {
      sourceFailed.error = err;
      throw err;
    }
    if (r.done) return undefined;
    compressed += r.value.length;
    if (compressed > limits.compressed)
      throw new BlobTooLargeError("compressed", limits.compressed, limits.headerBytes);
    return r.value;
  };
  let head = new Uint8Array(0);
  let headerLength: number | string;
  for (;;) {
    headerLength = gzipHeaderLength(head);
    if (headerLength !== "incomplete") break;
    const c = await next();
    if (c === undefined) throw new Error("gzip stream ends inside its header");
    const joined = new Uint8Array(head.length + c.length);
    joined.set(head);
    joined.set(c, head.length);
    head = joined;
  }
  if (typeof headerLength === "string") throw new Error(headerLength);
  const inflater = createInflateRaw();
  let pumpError: unknown;
  const pump = (async () => {
    try {
      let c: Uint8Array | undefined = head.subarray(headerLength);
      while (c !== undefined && !inflater.destroyed && !inflater.writableEnded) {
        if (c.length > 0 && !inflater.write(c)) {
          await new Promise<void>((resolve) => {
            inflater.once("drain", resolve);
            inflater.once("close", resolve);
          });
        }
        if (inflater.destroyed || inflater.readableEnded) break;
        c = await next();
      }
      if (!inflater.destroyed) inflater.end();
    } catch (err) {
      pumpError = err;
      inflater.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  })();
  let inflated = 0;
  try {
    for await (const out of inflater as AsyncIterable<Uint8Array>) {
      inflated += out.length;
      if (inflated > limits.inflated)
        throw new BlobTooLargeError("inflated", limits.inflated, limits.headerBytes + inflated - out.length);
      // A plain view: payloads handed out are Uint8Arrays, whatever zlib's Buffer subclass adds.
      yield new Uint8Array(out.buffer, out.byteOffset, out.length);
    }
  } catch (err) {
    throw pumpError ?? err;
  } finally {
    inflater.destroy();
    await pump;
    await source.return?.().catch(() => {});
  }
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
      const plain = gunzip(gather(input.q.drain(), raw), failed, {
        compressed: options.maxCompressedBytes ?? DEFAULT_MAX_COMPRESSED_BLOB_BYTES,
        inflated: options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BLOB_BYTES,
        headerBytes: header.headerBytes,
      })[Symbol.asyncIterator]();
      const q = new ByteQueue();
      q.position = header.headerBytes;
      input = new Input(q, plain, (err) =>
        failed.error !== undefined || isCtapError(err)
          ? err
          : new DecompressError(q.position + q.available, err),
      );
    }

    yield* readFrames(input, maxFrameBytes, resync, stats, options.select, new Turns(options.signal));
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
  turns: Turns,
): AsyncGenerator<CtapItem, void, undefined> {
  const q = input.q;
  let frameIndex = 0;
  const corruptionsBefore = stats.corruptions;

  /** Whether a valid frame header (or the end of the input) follows the `size` bytes at the queue's front. */
  async function nextFrameAt(size: number): Promise<boolean> {
    if (!(await input.ensure(size + Frame.headerBytes))) return q.available === size;
    return isValidFrameHeader(q.peek(size + Frame.headerBytes), size, maxFrameBytes);
  }

  // Resync mode only: skip forward from a bad frame header to the next plausible frame. The search for the
  // sync word is synchronous over the bytes at hand (a small constant per byte, whatever the bytes); only
  // pulling more input, and turning the event loop now and then, awaits.
  async function* scan(error: CtapError): AsyncGenerator<CorruptionItem, void, undefined> {
    let skipped = 1;
    q.skip(1);
    const valid = (bytes: Uint8Array, at: number) => isValidFrameHeader(bytes, at, maxFrameBytes);
    for (;;) {
      const hit = q.findWindow(FRAME_SYNC_BYTE0, Frame.headerBytes, valid);
      if (hit < 0) {
        skipped += q.available;
        q.skip(q.available);
        await turns.maybe();
        if (!(await input.pull())) break;
        continue;
      }
      q.skip(hit);
      skipped += hit;
      if (q.available >= Frame.headerBytes) break; // a valid frame header
      // Fewer than 16 bytes left after a sync byte: decided once more input comes (or the input ends).
      await turns.maybe();
      if (!(await input.ensure(Frame.headerBytes))) {
        skipped += q.available;
        q.skip(q.available);
        break;
      }
      if (isValidFrameHeader(q.peek(Frame.headerBytes), 0, maxFrameBytes)) break;
      q.skip(1);
      skipped++;
    }
    stats.corruptions++;
    stats.skippedBytes += skipped;
    yield { type: "corruption", error, skippedBytes: skipped };
  }

  for (;;) {
    // Checked before awaiting: most frames are already buffered, and an await costs a promise and a turn.
    if (q.available < Frame.headerBytes && !(await input.ensure(Frame.headerBytes))) {
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
    if (q.available < size && !(await input.ensure(size))) {
      const err = new TruncatedFrameError(q.available, size, at);
      if (!resync) throw err;
      // The length may be what is wrong (bytes removed inside the frame): the frames after it are searched
      // for in what is left, as after a bad frame header (the missing trailer, if it is, comes next).
      yield* scan(err);
      continue;
    }
    const body = q.peek(size).subarray(Frame.headerBytes);
    const type = head.type;
    if (select !== undefined && type !== FrameType.BlobEnd && !select(type, body)) {
      q.skip(size);
      stats.notSelected++;
      frameIndex++;
      stats.frames++;
      continue;
    }
    if (crc32(body) !== head.bodyCrc) {
      const err = new ChecksumMismatchError("frame body", at);
      if (!resync) throw err;
      if (await nextFrameAt(size)) {
        // The body is damaged, its length is not: the next frame starts where the header says.
        q.skip(size);
        stats.corruptions++;
        stats.skippedBytes += size;
        yield { type: "corruption", error: err, skippedBytes: size, withinFrame: true };
      } else {
        // Bytes were added or removed inside the frame: the next frame is searched for from here.
        yield* scan(err);
      }
      continue;
    }
    q.skip(size);
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
        const err = new MalformedRecordError(
          `blob-end counts ${item.frameCount} frames, read ${frameIndex}`,
          bodyAt,
        );
        if (!resync) throw err;
        stats.frameCountMismatch = true;
        // After reported damage the count is expected to differ; without any, frames went missing unseen.
        if (stats.corruptions === corruptionsBefore) {
          stats.corruptions++;
          yield { type: "corruption", error: err, skippedBytes: 0 };
        }
      }
      stats.trailer = true;
      yield item;
      return; // Nothing after the blob-end frame is read.
    }
    frameIndex++;
    stats.frames++;
    if ((frameIndex & 0xfff) === 0) await turns.maybe();
    if (item) yield item;
  }
}

/** Reads a whole blob held in memory. */
export function readCtapBytes(bytes: Uint8Array, options?: CtapReadOptions): AsyncGenerator<CtapItem> {
  return readCtap([bytes], options);
}
