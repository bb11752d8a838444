/**
 * The frame-batch streams of several stitchers merged into one sink in time order (mirror-egress, where
 * the streams of every shard meet). Each stream is in time order on its own (a stitcher's time-order stage
 * sees to it); across streams it is not, so frames are held and released by a watermark merge:
 *
 * - Every stream has a watermark: the newest frame time it sent, or what it declared (`watermark()`); no
 *   frame to come on it is stamped earlier.
 * - `release()` writes held frames, oldest first across streams, up to the lowest watermark of the streams
 *   it waits for. It waits for every stream that is open and not idle. A stream that has nothing to send
 *   says so (`watermark(ns, idle = true)`, or its host declares it idle after a silence): it is not waited
 *   for until it sends frames again, so one quiet stream never stalls the others. A stream that ended is
 *   not waited for either; its held frames still go out in order.
 * - Bounded: at most `maxHeldBytes` of frames are held. Beyond it the oldest are written before their time
 *   until half of it is held (`overflowFrames`). A frame older than one already written (after an overflow,
 *   or from a stream that was idle) is written in its turn all the same and counted (`lateFrames`). Nothing
 *   is dropped.
 *
 * Flow starts, key-log texts and flow ends travel in their stream's order: a flow's start reaches the sink
 * before its first frame, its end after its last, and key-log texts before the frames after them. A batch
 * is fully written once its stream's `applied` count reaches the `endEvent` that `push` returned (the host
 * acknowledges it then). Batches are held as received (no copy). Platform-neutral; time is not read here.
 */
import type { FrameSink } from "@cloudtap/packet";
import {
  eventSize,
  FRAME_HEADER,
  FrameBatchError,
  FrameBatchEvent,
  NO_FLOW,
  type ReplayTarget,
} from "./frame-batch.js";

export const DEFAULT_MERGE_MAX_HELD_BYTES = 64 * 1024 * 1024;

export interface StreamMergeOptions {
  /** Most frame bytes held across streams. Default 64 MiB. */
  readonly maxHeldBytes?: number;
}

export class StreamMergeStats {
  /** Frames written to the sink. */
  frames = 0;
  /** Frames written after a later frame had been written (out of time order). */
  lateFrames = 0;
  /** Frames written before the watermarks allowed, because `maxHeldBytes` was held. */
  overflowFrames = 0;
  peakHeldBytes = 0;
}

interface QueuedBatch {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  at: number;
}

type FlowTarget = FrameSink & { end?(): void };

/** No limit: nothing is waited for. */
const UNLIMITED = undefined;
/** A stream waited for has sent nothing yet. */
const BLOCKED = -(2n ** 63n);

/** One stream's input to the merge. */
export class MergeInput {
  private readonly queue: QueuedBatch[] = [];
  private readonly flows = new Map<number, FlowTarget>();
  /** Flow refs started and not ended, as pushed (a batch is checked whole before any of it is queued). */
  private readonly refs = new Set<number>();
  private pushed = 0;
  private appliedEvents = 0;
  private declared: bigint | undefined;
  private newest: bigint | undefined;
  /** The head frame's timestamp, read at `headAt` of `headBatch`. */
  private headBatch: QueuedBatch | undefined;
  private headAt = -1;
  private headTs = 0n;
  /** Frame bytes queued. */
  heldBytes = 0;
  idle = false;
  ended = false;

  constructor(
    private readonly merge: StreamMerge,
    readonly id: string,
  ) {}

  /** Events of this stream written (or applied) so far. */
  get applied(): number {
    return this.appliedEvents;
  }

  /** The stream's watermark: no frame to come is stamped earlier (undefined: nothing known yet). */
  get watermarkNs(): bigint | undefined {
    if (this.declared === undefined) return this.newest;
    if (this.newest === undefined) return this.declared;
    return this.declared > this.newest ? this.declared : this.newest;
  }

  /**
   * Queues one batch (checked whole first: a malformed one throws `FrameBatchError` and queues nothing).
   * Returns its frame count and the `applied` count at which all of it is written.
   */
  push(bytes: Uint8Array): { readonly frames: number; readonly endEvent: number } {
    if (this.ended) throw new FrameBatchError(`stream ${this.id} ended`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const started: number[] = [];
    const ended: number[] = [];
    const live = (ref: number) => (this.refs.has(ref) || started.includes(ref)) && !ended.includes(ref);
    let at = 0;
    let events = 0;
    let frames = 0;
    let frameBytes = 0;
    let newest = this.newest;
    while (at < bytes.length) {
      const type = bytes[at]!;
      const headerBytes =
        type === FrameBatchEvent.Frame ? FRAME_HEADER : type === FrameBatchEvent.FlowStart ? 9 : 5;
      if (at + headerBytes > bytes.length) throw new FrameBatchError(`batch truncated at byte ${at}`);
      const size = eventSize(bytes, view, at);
      if (at + size > bytes.length) throw new FrameBatchError(`batch truncated at byte ${at}`);
      if (type === FrameBatchEvent.FlowStart) started.push(view.getUint32(at + 1, true));
      else if (type === FrameBatchEvent.FlowEnd) ended.push(view.getUint32(at + 1, true));
      else if (type === FrameBatchEvent.Frame) {
        const ref = view.getUint32(at + 1, true);
        if (ref !== NO_FLOW && !live(ref))
          throw new FrameBatchError(`frame of unknown flow ${ref} at byte ${at}`);
        const ts = view.getBigInt64(at + 5, true);
        if (newest === undefined || ts > newest) newest = ts;
        frames++;
        frameBytes += size - FRAME_HEADER;
      }
      at += size;
      events++;
    }
    for (const ref of started) this.refs.add(ref);
    for (const ref of ended) this.refs.delete(ref);
    this.newest = newest;
    if (frames > 0) this.idle = false;
    if (events > 0) this.queue.push({ bytes, view, at: 0 });
    this.pushed += events;
    this.heldBytes += frameBytes;
    this.merge.noteQueued(frameBytes);
    return { frames, endEvent: this.pushed };
  }

  /** What the stream declares between batches: its watermark, and whether it has nothing pending. */
  watermark(ns: bigint | undefined, idle: boolean): void {
    if (ns !== undefined && (this.declared === undefined || ns > this.declared)) this.declared = ns;
    this.idle = idle;
  }

  /** The stream ended: it is no longer waited for; its held frames go out in order, then its flows end. */
  end(): void {
    this.ended = true;
  }

  /**
   * Applies the non-frame events at the head of the queue; the head frame's timestamp, or undefined when
   * nothing is queued.
   */
  headNs(): bigint | undefined {
    const q = this.queue;
    while (q.length > 0) {
      const b = q[0]!;
      if (b.at >= b.bytes.length) {
        q.shift();
        continue;
      }
      const type = b.bytes[b.at]!;
      if (type === FrameBatchEvent.Frame) {
        // Asked once per stream for every frame the merge writes: read (and allocated) once per frame.
        if (this.headBatch !== b || this.headAt !== b.at) {
          this.headBatch = b;
          this.headAt = b.at;
          this.headTs = b.view.getBigInt64(b.at + 5, true);
        }
        return this.headTs;
      }
      const size = eventSize(b.bytes, b.view, b.at);
      if (type === FrameBatchEvent.FlowStart) {
        const ref = b.view.getUint32(b.at + 1, true);
        const n = b.view.getUint32(b.at + 5, true);
        const context = JSON.parse(this.merge.decoder.decode(b.bytes.subarray(b.at + 9, b.at + 9 + n)));
        this.flows.set(ref, this.merge.target.forFlow(context));
      } else if (type === FrameBatchEvent.FlowEnd) {
        const ref = b.view.getUint32(b.at + 1, true);
        this.flows.get(ref)?.end?.();
        this.flows.delete(ref);
      } else if (type === FrameBatchEvent.KeyLog) {
        const n = b.view.getUint32(b.at + 1, true);
        this.merge.target.embedKeys?.(this.merge.decoder.decode(b.bytes.subarray(b.at + 5, b.at + 5 + n)));
      }
      b.at += size;
      this.appliedEvents++;
    }
    return undefined;
  }

  /** Writes the head frame (`headNs()` returned its time); returns its byte count. */
  writeHead(ts: bigint): number {
    const b = this.queue[0]!;
    const ref = b.view.getUint32(b.at + 1, true);
    const original = b.view.getUint32(b.at + 13, true);
    const n = b.view.getUint32(b.at + 17, true);
    const sink = ref === NO_FLOW ? this.merge.target : this.flows.get(ref)!;
    const start = b.at + FRAME_HEADER;
    const frame = b.bytes.subarray(start, start + n);
    if (sink.writeFrame) sink.writeFrame(frame, ts, original);
    else {
      sink.begin(n).set(frame);
      sink.commit(ts, 0, original);
    }
    b.at = start + n;
    this.appliedEvents++;
    this.heldBytes -= n;
    return n;
  }

  /** Ends the flows still open (an ended stream whose queue is empty). */
  endFlows(): void {
    for (const f of this.flows.values()) f.end?.();
    this.flows.clear();
  }

  get queued(): boolean {
    return this.queue.length > 0;
  }
}

/** Merges several frame-batch streams into one flow-aware sink by frame time. */
export class StreamMerge {
  readonly decoder = new TextDecoder();
  private readonly inputs = new Set<MergeInput>();
  private heldBytes = 0;
  private readonly maxHeldBytes: number;
  /** Newest frame time written. */
  private written: bigint | undefined;

  constructor(
    readonly target: ReplayTarget,
    options: StreamMergeOptions = {},
    readonly stats: StreamMergeStats = new StreamMergeStats(),
  ) {
    this.maxHeldBytes = options.maxHeldBytes ?? DEFAULT_MERGE_MAX_HELD_BYTES;
  }

  /** A new stream's input. */
  open(id: string): MergeInput {
    const input = new MergeInput(this, id);
    this.inputs.add(input);
    return input;
  }

  /** Frame bytes held across streams. */
  get heldFrameBytes(): number {
    return this.heldBytes;
  }

  /** Streams open or with frames still held. */
  get streams(): readonly MergeInput[] {
    return [...this.inputs];
  }

  /** An input queued frame bytes (called by `MergeInput.push`). */
  noteQueued(bytes: number): void {
    this.heldBytes += bytes;
    if (this.heldBytes > this.stats.peakHeldBytes) this.stats.peakHeldBytes = this.heldBytes;
  }

  /** The time up to which frames may go out: the lowest watermark of the streams waited for. */
  limitNs(): bigint | undefined {
    let limit: bigint | undefined = UNLIMITED;
    for (const input of this.inputs) {
      if (input.ended || input.idle) continue;
      const w = input.watermarkNs;
      if (w === undefined) return BLOCKED;
      if (limit === UNLIMITED || w < limit) limit = w;
    }
    return limit;
  }

  /** Writes what the watermarks allow (and, beyond `maxHeldBytes`, the oldest); returns the frame count. */
  release(): number {
    return this.releaseUpTo(this.limitNs());
  }

  /** Writes every held frame, oldest first (the egress closes). */
  releaseAll(): number {
    return this.releaseUpTo(UNLIMITED);
  }

  private releaseUpTo(limit: bigint | undefined): number {
    let frames = 0;
    let overflow = false;
    for (;;) {
      let best: MergeInput | undefined;
      let bestNs = 0n;
      for (const input of this.inputs) {
        const ts = input.headNs();
        if (ts !== undefined && (best === undefined || ts < bestNs)) {
          best = input;
          bestNs = ts;
        }
      }
      if (best === undefined) break;
      if (limit !== UNLIMITED && bestNs > limit) {
        if (!overflow && this.heldBytes <= this.maxHeldBytes) break;
        if (overflow && this.heldBytes <= this.maxHeldBytes >> 1) break;
        overflow = true;
        this.stats.overflowFrames++;
      }
      if (this.written !== undefined && bestNs < this.written) this.stats.lateFrames++;
      else this.written = bestNs;
      this.heldBytes -= best.writeHead(bestNs);
      this.stats.frames++;
      frames++;
    }
    for (const input of this.inputs) {
      if (!input.ended || input.queued) continue;
      input.endFlows();
      this.inputs.delete(input);
    }
    return frames;
  }
}
