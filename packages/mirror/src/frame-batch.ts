/**
 * A stitcher's frames as batches that cross a process boundary (the mirror stream from stitcher to
 * mirror-egress). `FrameBatchRecorder` is a flow-aware frame sink: the stitcher writes into it as it writes
 * into an egress, and `take()` hands out what was recorded as one byte string. `FrameBatchReplayer` plays
 * batches, in order, into a real flow-aware sink (the egress), so the egress sees the same calls in the same
 * order as in one process: flow starts (with their context), frames with timestamps, flow ends, and key-log
 * texts to embed (before the packets they decrypt).
 *
 * Encoding (little endian), a sequence of events:
 *   0x01 flow-start  u32 ref, u32 n, n bytes of JSON (the FrameFlowContext)
 *   0x02 frame       u32 ref (0xffffffff: no flow), i64 timestamp ns, u32 original length, u32 n, n bytes
 *   0x03 flow-end    u32 ref
 *   0x04 key-log     u32 n, n bytes of UTF-8 key-log text
 * Flow refs are numbered per recorder; a replayer serves one recorder (one stream).
 */
import type { FlowAwareFrameSink, FrameFlowContext, FrameSink } from "@cloudtap/packet";

export const FrameBatchEvent = { FlowStart: 1, Frame: 2, FlowEnd: 3, KeyLog: 4 } as const;

/** The flow ref of a frame that belongs to no flow. */
export const NO_FLOW = 0xffffffff;
/** Bytes before a frame's own bytes: type, ref, timestamp, original length, length. */
export const FRAME_HEADER = 1 + 4 + 8 + 4 + 4;

export class FrameBatchError extends Error {
  override readonly name = "FrameBatchError";
  readonly category = "bad-input";
}

export interface RecordedBatch {
  readonly bytes: Uint8Array;
  readonly frames: number;
  /**
   * Bytes just before `bytes` in its buffer that belong to this batch alone (0: none): room for the header
   * of the message that carries it (the mirror stream's protobuf), so the frames go out without a copy.
   */
  readonly headroom: number;
  /** Connections whose flows ended in this batch. */
  readonly endedConnections: readonly string[];
}

/** Default size of a recorder's buffers: batches up to this size leave it without a copy. */
export const DEFAULT_RECORDER_CHUNK_BYTES = 1024 * 1024;

/** Bytes kept free before every batch a recorder hands out (`RecordedBatch.headroom`). */
export const BATCH_HEADROOM = 512;

/**
 * A frame sink that records; `take()` returns the batch so far and starts the next. Events are recorded into
 * buffers of `chunkBytes`: when one is full it is sealed as it is and recording goes on in a new one, so a
 * large output (a time-order stage releasing a window at once) is never copied to grow a buffer.
 * `takeBatches` hands the batches out as views of those buffers, each with `BATCH_HEADROOM` free bytes
 * before it, and the next batch is recorded in the rest of the buffer: no frame is copied between the
 * stitcher writing it and the mirror stream's socket write.
 */
export class FrameBatchRecorder implements FlowAwareFrameSink {
  private readonly chunkBytes: number;
  private buf: Uint8Array;
  private view: DataView;
  /** Where the batch being recorded begins in `buf` (its headroom is before it). */
  private batchAt = BATCH_HEADROOM;
  private at = BATCH_HEADROOM;
  private frameAt = -1;
  private frames = 0;
  /** Batches recorded up to a full buffer, sealed (views, frame counts, headroom), oldest first. */
  private sealed: { bytes: Uint8Array; frames: number; headroom: number }[] = [];
  private sealedBytes = 0;
  private nextRef = 0;
  private ended: string[] = [];
  private newest: bigint | undefined;
  /** Flows started and not yet ended, per connection. */
  private readonly openFlows = new Map<string, number>();
  private readonly encoder = new TextEncoder();

  constructor(options: { readonly chunkBytes?: number } = {}) {
    this.chunkBytes = Math.max(4096, options.chunkBytes ?? DEFAULT_RECORDER_CHUNK_BYTES);
    this.buf = new Uint8Array(this.chunkBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes recorded since the last `take()`. */
  get size(): number {
    return this.sealedBytes + this.at - this.batchAt;
  }

  get frameCount(): number {
    let n = this.frames;
    for (const c of this.sealed) n += c.frames;
    return n;
  }

  /** The latest timestamp of any frame recorded so far (undefined: none yet); a stream's watermark. */
  get newestFrameNs(): bigint | undefined {
    return this.newest;
  }

  /** Room for an event of `n` bytes: the current buffer, or a new one once the current one is sealed. */
  private reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    if (this.at > this.batchAt) {
      this.sealed.push({
        bytes: this.buf.subarray(this.batchAt, this.at),
        frames: this.frames,
        headroom: BATCH_HEADROOM,
      });
      this.sealedBytes += this.at - this.batchAt;
      this.frames = 0;
    }
    this.fresh(n);
  }

  /** A new buffer with room for an event of `n` bytes after the headroom. */
  private fresh(n: number): void {
    this.buf = new Uint8Array(Math.max(this.chunkBytes, BATCH_HEADROOM + n));
    this.view = new DataView(this.buf.buffer);
    this.batchAt = BATCH_HEADROOM;
    this.at = BATCH_HEADROOM;
  }

  /**
   * After a take: the next batch goes on in the rest of the buffer (past a headroom of its own) while a
   * sixteenth of the buffer is left, else in a new one.
   */
  private nextBatch(): void {
    const rest = this.buf.length - this.at - BATCH_HEADROOM;
    if (rest >= Math.max(4096, this.chunkBytes >>> 4)) {
      this.batchAt = this.at + BATCH_HEADROOM;
      this.at = this.batchAt;
    } else this.fresh(0);
  }

  private beginFrame(ref: number, length: number): Uint8Array {
    this.reserve(FRAME_HEADER + length);
    this.frameAt = this.at;
    this.buf[this.at] = FrameBatchEvent.Frame;
    this.view.setUint32(this.at + 1, ref, true);
    this.view.setUint32(this.at + 17, length, true);
    return this.buf.subarray(this.at + FRAME_HEADER, this.at + FRAME_HEADER + length);
  }

  private commitFrame(timestampNs: bigint, offsetNs: number | undefined, originalLength: number | undefined) {
    const at = this.frameAt;
    if (at < 0) throw new FrameBatchError("commit without begin");
    const length = this.view.getUint32(at + 17, true);
    const ts = offsetNs ? timestampNs + BigInt(offsetNs) : timestampNs;
    if (this.newest === undefined || ts > this.newest) this.newest = ts;
    this.view.setBigInt64(at + 5, ts, true);
    this.view.setUint32(at + 13, originalLength ?? length, true);
    this.at = at + FRAME_HEADER + length;
    this.frameAt = -1;
    this.frames++;
  }

  begin(length: number): Uint8Array {
    return this.beginFrame(NO_FLOW, length);
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.commitFrame(timestampNs, offsetNs, originalLength);
  }

  /**
   * Whether a flow of this connection has started and not ended: its last frames may still be on their
   * way (a time-order stage ends a flow only once its last frame is out).
   */
  hasOpenFlows(connId: string): boolean {
    return this.openFlows.has(connId);
  }

  forFlow(flow: FrameFlowContext): FrameSink & { end(): void } {
    const ref = this.nextRef++;
    const conn = flow.connId;
    this.openFlows.set(conn, (this.openFlows.get(conn) ?? 0) + 1);
    let ended = false;
    const json = this.encoder.encode(JSON.stringify(flow));
    this.reserve(9 + json.length);
    this.buf[this.at] = FrameBatchEvent.FlowStart;
    this.view.setUint32(this.at + 1, ref, true);
    this.view.setUint32(this.at + 5, json.length, true);
    this.buf.set(json, this.at + 9);
    this.at += 9 + json.length;
    return {
      begin: (length) => this.beginFrame(ref, length),
      commit: (timestampNs, offsetNs, originalLength) =>
        this.commitFrame(timestampNs, offsetNs, originalLength),
      end: () => {
        if (ended) return;
        ended = true;
        const open = (this.openFlows.get(conn) ?? 1) - 1;
        if (open > 0) this.openFlows.set(conn, open);
        else this.openFlows.delete(conn);
        this.reserve(5);
        this.buf[this.at] = FrameBatchEvent.FlowEnd;
        this.view.setUint32(this.at + 1, ref, true);
        this.at += 5;
      },
    };
  }

  /** A TLS flow's key-log lines, for outputs that embed keys (before its packets). */
  embedKeys(keyLogText: string): void {
    const text = this.encoder.encode(keyLogText);
    this.reserve(5 + text.length);
    this.buf[this.at] = FrameBatchEvent.KeyLog;
    this.view.setUint32(this.at + 1, text.length, true);
    this.buf.set(text, this.at + 5);
    this.at += 5 + text.length;
  }

  /** Marks a connection as finished in the batch being recorded (its last frames are in it). */
  connectionEnded(connId: string): void {
    this.ended.push(connId);
  }

  /**
   * The batches recorded so far, cut at event boundaries so that none is above `maxBytes` (but for a single
   * event that is bigger), and a fresh start. Connections that ended go with the last batch. Nothing is
   * copied: the batches are views of the recorder's buffers (see the class), which it never writes again.
   */
  takeBatches(maxBytes: number): RecordedBatch[] {
    const parts = this.sealed;
    // Nothing recorded in the open buffer: it stays as it is (an idle shard takes every tick).
    if (this.at > this.batchAt) {
      parts.push({
        bytes: this.buf.subarray(this.batchAt, this.at),
        frames: this.frames,
        headroom: BATCH_HEADROOM,
      });
      this.nextBatch();
    }
    const endedConnections = this.ended;
    this.sealed = [];
    this.sealedBytes = 0;
    this.frames = 0;
    this.ended = [];
    const out: RecordedBatch[] = [];
    for (const part of parts) {
      if (part.bytes.length <= maxBytes)
        out.push({ bytes: part.bytes, frames: part.frames, headroom: part.headroom, endedConnections: [] });
      else out.push(...split(part.bytes, part.headroom, maxBytes));
    }
    if (out.length > 0) {
      const last = out[out.length - 1]!;
      out[out.length - 1] = { ...last, endedConnections };
    }
    return out;
  }

  /** The batch recorded so far (a copy), and a fresh start. */
  take(): RecordedBatch {
    const parts = this.sealed.map((c) => c.bytes);
    parts.push(this.buf.subarray(this.batchAt, this.at));
    const bytes = new Uint8Array(this.size);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    const batch = { bytes, frames: this.frameCount, headroom: 0, endedConnections: this.ended };
    this.sealed = [];
    this.sealedBytes = 0;
    this.frames = 0;
    this.ended = [];
    // Not back to the buffer's start: batches handed out by `takeBatches` may be views of it.
    if (this.at > this.batchAt) this.nextBatch();
    return batch;
  }
}

/**
 * One buffer of events cut at event boundaries into batches of at most `maxBytes` (but for a bigger event);
 * the first keeps the buffer's headroom, the others have none.
 */
function split(bytes: Uint8Array, headroom: number, maxBytes: number): RecordedBatch[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: RecordedBatch[] = [];
  let start = 0;
  let at = 0;
  let frames = 0;
  while (at < bytes.length) {
    const size = eventSize(bytes, view, at);
    if (at > start && at + size - start > maxBytes) {
      out.push({
        bytes: bytes.subarray(start, at),
        frames,
        headroom: start === 0 ? headroom : 0,
        endedConnections: [],
      });
      start = at;
      frames = 0;
    }
    if (bytes[at] === FrameBatchEvent.Frame) frames++;
    at += size;
  }
  out.push({
    bytes: bytes.subarray(start),
    frames,
    headroom: start === 0 ? headroom : 0,
    endedConnections: [],
  });
  return out;
}

/** The size of the event at `at` (its type byte included); throws `FrameBatchError` on an unknown type. */
export function eventSize(bytes: Uint8Array, view: DataView, at: number): number {
  switch (bytes[at]) {
    case FrameBatchEvent.FlowStart:
      return 9 + view.getUint32(at + 5, true);
    case FrameBatchEvent.Frame:
      return FRAME_HEADER + view.getUint32(at + 17, true);
    case FrameBatchEvent.FlowEnd:
      return 5;
    case FrameBatchEvent.KeyLog:
      return 5 + view.getUint32(at + 1, true);
    default:
      throw new FrameBatchError(`unknown event ${bytes[at]} at byte ${at}`);
  }
}

export interface ReplayTarget extends FlowAwareFrameSink {
  embedKeys?(keyLogText: string): void;
}

/** Plays one recorder's batches, in order, into a flow-aware sink. */
export class FrameBatchReplayer {
  private readonly flows = new Map<number, FrameSink & { end?(): void }>();
  private readonly decoder = new TextDecoder();

  constructor(private readonly target: ReplayTarget) {}

  /** Flows started and not yet ended (a stream that broke off leaves some). */
  get openFlows(): number {
    return this.flows.size;
  }

  /** Replays one batch; returns the number of frames. Throws `FrameBatchError` on a malformed batch. */
  replay(bytes: Uint8Array): number {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    let frames = 0;
    const need = (n: number) => {
      if (at + n > bytes.length) throw new FrameBatchError(`batch truncated at byte ${at}`);
    };
    while (at < bytes.length) {
      const type = bytes[at]!;
      switch (type) {
        case FrameBatchEvent.FlowStart: {
          need(9);
          const ref = view.getUint32(at + 1, true);
          const n = view.getUint32(at + 5, true);
          need(9 + n);
          const context = JSON.parse(
            this.decoder.decode(bytes.subarray(at + 9, at + 9 + n)),
          ) as FrameFlowContext;
          this.flows.set(ref, this.target.forFlow(context));
          at += 9 + n;
          break;
        }
        case FrameBatchEvent.Frame: {
          need(FRAME_HEADER);
          const ref = view.getUint32(at + 1, true);
          const ts = view.getBigInt64(at + 5, true);
          const original = view.getUint32(at + 13, true);
          const n = view.getUint32(at + 17, true);
          need(FRAME_HEADER + n);
          const sink = ref === NO_FLOW ? this.target : this.flows.get(ref);
          if (!sink) throw new FrameBatchError(`frame of unknown flow ${ref} at byte ${at}`);
          sink.begin(n).set(bytes.subarray(at + FRAME_HEADER, at + FRAME_HEADER + n));
          sink.commit(ts, 0, original);
          at += FRAME_HEADER + n;
          frames++;
          break;
        }
        case FrameBatchEvent.FlowEnd: {
          need(5);
          const ref = view.getUint32(at + 1, true);
          this.flows.get(ref)?.end?.();
          this.flows.delete(ref);
          at += 5;
          break;
        }
        case FrameBatchEvent.KeyLog: {
          need(5);
          const n = view.getUint32(at + 1, true);
          need(5 + n);
          this.target.embedKeys?.(this.decoder.decode(bytes.subarray(at + 5, at + 5 + n)));
          at += 5 + n;
          break;
        }
        default:
          throw new FrameBatchError(`unknown event ${type} at byte ${at}`);
      }
    }
    return frames;
  }

  /** The stream ended: flows still open are ended. */
  endAll(): void {
    for (const sink of this.flows.values()) sink.end?.();
    this.flows.clear();
  }
}
