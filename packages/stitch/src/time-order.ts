/**
 * Puts the frames of all flows in time order before they reach the sink: a bounded reorder window driven
 * by record time (a watermark).
 *
 * Why: the stitcher emits a flow's packets when its records are released, and blobs of several tappers
 * (or a chunk's segments spread over its span) interleave flows out of time order, so a capture file read
 * by time (reordercap, mergecap, Zeek, a paced tunnel) would see another order than the file's.
 *
 * Lifecycle: the stitcher asks `view(connId, sink)` for each flow's sink; frames committed to a view are
 * built in this stage's slabs (`beginAt`/`buffer`) and indexed by time. `release(upToNs)` passes every held
 * frame stamped at or before `upToNs` on to its flow's sink, in time order (stable: frames of equal time
 * keep their order, so a flow's packets never swap); `releaseAll()` passes everything (the input ended).
 * A flow's `end()` reaches its sink once its last held frame is out.
 *
 * Bounds and counters: at most `maxBytes` of frames are held; beyond it the oldest are released early
 * (`capReleases`). A frame stamped earlier than a frame already released cannot be put in order any more:
 * it is written at once, out of order, and counted (`lateFrames`); nothing is dropped.
 * Platform-neutral: Uint8Array slabs, no I/O.
 */
import type { FrameSink } from "@cloudtap/packet";

export const DEFAULT_TIME_ORDER_MAX_BYTES = 64 * 1024 * 1024;

export class TimeOrderStats {
  /** Frames that went through the window. */
  frames = 0;
  /** Frames stamped before a frame already written: written at once, out of time order. */
  lateFrames = 0;
  /** How far (ns) the latest of those was behind the newest frame already written. */
  maxLatenessNs = 0;
  /** Frames released before their time because `maxBytes` was held. */
  capReleases = 0;
  /** Most bytes held at once. */
  peakHeldBytes = 0;
}

type Target = FrameSink & { end?(): void };

const SLAB_BYTES = 1024 * 1024;
/** Keys (ns from the base) stay below 2^50 (13 days), so that key plus offset is exact in a double. */
const MAX_KEY_NS = 2n ** 50n;
/** Stands for the identity permutation when the held frames are already in key order. */
const IDENTITY: ArrayLike<number> = { length: 0 };

interface Slab {
  readonly bytes: Uint8Array;
  used: number;
  /** Frames in this slab not yet released. */
  live: number;
}

const INDEX_BITS = 2 ** 20;

/**
 * The held frames, as parallel arrays (no object per frame: frames stay held across collections), in
 * commit order, or in key order once sorted.
 */
class HeldFrames {
  length = 0;
  /** Time relative to the stage's base, in ns (a Number, below 2^50: exact). */
  keys = new Float64Array(1024);
  ats = new Int32Array(1024);
  lengths = new Int32Array(1024);
  /** The frame's length on the wire, -1: its captured length. */
  originals = new Int32Array(1024);
  slabs: Slab[] = [];
  views: OrderedFlowSink[] = [];
  private packed = new Float64Array(1024);

  push(key: number, slab: Slab, at: number, length: number, original: number, view: OrderedFlowSink): void {
    const i = this.length++;
    if (i === this.keys.length) this.grow(i * 2);
    this.keys[i] = key;
    this.ats[i] = at;
    this.lengths[i] = length;
    this.originals[i] = original;
    this.slabs[i] = slab;
    this.views[i] = view;
  }

  private grow(capacity: number): void {
    const f = (a: Float64Array) => {
      const b = new Float64Array(capacity);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array) => {
      const b = new Int32Array(capacity);
      b.set(a);
      return b;
    };
    this.keys = f(this.keys);
    this.ats = i32(this.ats);
    this.lengths = i32(this.lengths);
    this.originals = i32(this.originals);
  }

  /** The frames' indices in key order, equal keys in commit order (stable). */
  order(): ArrayLike<number> {
    const n = this.length;
    const keys = this.keys;
    let min = keys[0]!;
    let max = min;
    for (let i = 1; i < n; i++) {
      const k = keys[i]!;
      if (k < min) min = k;
      else if (k > max) max = k;
    }
    if (n < INDEX_BITS && max - min < 2 ** 32) {
      // (key, index) packed in one double and sorted natively: no comparator call per comparison.
      if (this.packed.length < n) this.packed = new Float64Array(this.keys.length);
      const packed = this.packed.subarray(0, n);
      for (let i = 0; i < n; i++) packed[i] = (keys[i]! - min) * INDEX_BITS + i;
      packed.sort();
      for (let i = 0; i < n; i++) packed[i] = packed[i]! % INDEX_BITS;
      return packed;
    }
    const order = Array.from({ length: n }, (_, i) => i);
    return order.sort((x, y) => keys[x]! - keys[y]! || x - y);
  }

  /** Keeps the frames `order[from..]`, in that order, at the front. */
  keep(order: ArrayLike<number>, from: number, sorted: boolean): void {
    const n = this.length;
    const left = n - from;
    if (left <= 0) {
      this.length = 0;
      this.slabs.length = 0;
      this.views.length = 0;
      return;
    }
    if (sorted) {
      this.keys.copyWithin(0, from, n);
      this.ats.copyWithin(0, from, n);
      this.lengths.copyWithin(0, from, n);
      this.originals.copyWithin(0, from, n);
      this.slabs.splice(0, from);
      this.views.splice(0, from);
    } else {
      const k = new Float64Array(left);
      const a = new Int32Array(left);
      const l = new Int32Array(left);
      const r = new Int32Array(left);
      const s: Slab[] = new Array(left);
      const v: OrderedFlowSink[] = new Array(left);
      for (let i = 0; i < left; i++) {
        const j = order[from + i]!;
        k[i] = this.keys[j]!;
        a[i] = this.ats[j]!;
        l[i] = this.lengths[j]!;
        r[i] = this.originals[j]!;
        s[i] = this.slabs[j]!;
        v[i] = this.views[j]!;
      }
      this.keys.set(k);
      this.ats.set(a);
      this.lengths.set(l);
      this.originals.set(r);
      this.slabs = s;
      this.views = v;
    }
    this.length = left;
  }
}

/** One flow's sink in front of the window. */
class OrderedFlowSink implements FrameSink {
  /** Frames held for this flow. */
  held = 0;
  ended = false;
  private at = -1;
  private length = 0;

  constructor(
    private readonly order: TimeOrder,
    readonly connId: string,
    readonly target: Target,
  ) {}

  get buffer(): Uint8Array {
    return this.order.slab.bytes;
  }

  beginAt(length: number): number {
    this.at = this.order.reserve(length);
    this.length = length;
    return this.at;
  }

  begin(length: number): Uint8Array {
    const at = this.beginAt(length);
    return this.order.slab.bytes.subarray(at, at + length);
  }

  commit(timestampNs: bigint, offsetNs = 0, originalLength?: number): void {
    this.order.commit(this, this.at, this.length, timestampNs, offsetNs, originalLength);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.held === 0) this.target.end?.();
    else this.order.endedWhileHeld(this.connId, 1);
  }
}

export interface TimeOrderOptions {
  /** Most bytes of frames held. Default 64 MiB. */
  readonly maxBytes?: number;
}

export class TimeOrder {
  slab: Slab;
  private readonly spare: Slab[] = [];
  private readonly pending = new HeldFrames();
  /** Whether `pending` is known to be in key order. */
  private sorted = true;
  private heldBytes = 0;
  private readonly maxBytes: number;
  private base: bigint | undefined;
  /** Cache of the last timestamp's key (a synthesizer stamps many frames with one record time). */
  private lastTs = -1n;
  private lastKey = 0;
  /** Key of the newest frame written (-Infinity: none). */
  private written = Number.NEGATIVE_INFINITY;
  /** Flows that ended with frames still held, by connection id. */
  private readonly endedHeld = new Map<string, number>();

  constructor(
    options: TimeOrderOptions = {},
    readonly stats: TimeOrderStats = new TimeOrderStats(),
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_TIME_ORDER_MAX_BYTES;
    this.slab = this.newSlab(SLAB_BYTES);
  }

  /** The sink for one flow's frames, in front of `target`. */
  view(connId: string, target: Target): FrameSink & { end(): void } {
    return new OrderedFlowSink(this, connId, target);
  }

  /** Whether frames of this connection are still held after its sink ended. */
  holds(connId: string): boolean {
    return this.endedHeld.has(connId);
  }

  get heldFrames(): number {
    return this.pending.length;
  }

  private newSlab(size: number): Slab {
    const reuse = size <= SLAB_BYTES ? this.spare.pop() : undefined;
    if (reuse) {
      reuse.used = 0;
      reuse.live = 0;
      return reuse;
    }
    return { bytes: new Uint8Array(Math.max(size, SLAB_BYTES)), used: 0, live: 0 };
  }

  /** Room for a frame of `length` bytes in the current slab; its offset. */
  reserve(length: number): number {
    let s = this.slab;
    if (s.used + length > s.bytes.length) {
      if (s.live === 0 && s.bytes.length >= length) s.used = 0;
      else {
        s = this.newSlab(length);
        this.slab = s;
      }
    }
    return s.used;
  }

  private keyOf(ts: bigint): number {
    if (ts === this.lastTs) return this.lastKey;
    this.base ??= ts;
    let delta = ts - this.base;
    if (delta > MAX_KEY_NS || delta < -MAX_KEY_NS) {
      // A jump of weeks (a store of captures from different days): keys stay exact only near the base.
      // What is held is all before the jump (the watermark passed it when the far blob began): written,
      // then the base moves.
      this.releaseAll();
      this.written = this.written === Number.NEGATIVE_INFINITY ? this.written : this.written - Number(delta);
      this.base = ts;
      delta = 0n;
    }
    this.lastTs = ts;
    this.lastKey = Number(delta);
    return this.lastKey;
  }

  commit(
    view: OrderedFlowSink,
    at: number,
    length: number,
    ts: bigint,
    offsetNs: number,
    originalLength: number | undefined,
  ): void {
    const slab = this.slab;
    const key = this.keyOf(ts) + offsetNs;
    this.stats.frames++;
    if (key < this.written) {
      // Too late to be put in order: written now, counted.
      this.stats.lateFrames++;
      const lateness = this.written - key;
      if (lateness > this.stats.maxLatenessNs) this.stats.maxLatenessNs = lateness;
      this.write(view.target, slab.bytes, at, length, ts, offsetNs, originalLength);
      return;
    }
    slab.used = at + length;
    slab.live++;
    view.held++;
    const p = this.pending;
    if (this.sorted && p.length > 0 && key < p.keys[p.length - 1]!) this.sorted = false;
    p.push(key, slab, at, length, originalLength ?? -1, view);
    this.heldBytes += length;
    if (this.heldBytes > this.stats.peakHeldBytes) this.stats.peakHeldBytes = this.heldBytes;
    if (this.heldBytes > this.maxBytes) this.releaseOldest(this.maxBytes >> 1);
  }

  /** Passes every frame stamped at or before `upToNs` on, in time order. */
  release(upToNs: bigint): void {
    if (this.pending.length === 0 || this.base === undefined) return;
    this.releaseKeys(Number(upToNs - this.base), Number.POSITIVE_INFINITY);
  }

  /** Passes every held frame on, in time order (the input ended). */
  releaseAll(): void {
    this.releaseKeys(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }

  /** Releases the oldest frames until at most `keepBytes` are held. */
  private releaseOldest(keepBytes: number): void {
    this.stats.capReleases += this.releaseKeys(Number.NEGATIVE_INFINITY, keepBytes);
  }

  /**
   * Releases held frames in key order while their key is at most `upToKey`, or while more than
   * `keepBytes` are held; returns how many.
   */
  private releaseKeys(upToKey: number, keepBytes: number): number {
    const p = this.pending;
    const n = p.length;
    if (n === 0) return 0;
    const wasSorted = this.sorted;
    const order: ArrayLike<number> = wasSorted ? IDENTITY : p.order();
    const base = this.base!;
    const { keys, ats, lengths, originals, slabs, views } = p;
    let i = 0;
    for (; i < n; i++) {
      const j = wasSorted ? i : order[i]!;
      const key = keys[j]!;
      if (key > upToKey && this.heldBytes <= keepBytes) break;
      const length = lengths[j]!;
      const original = originals[j]!;
      const s = slabs[j]!;
      const v = views[j]!;
      this.heldBytes -= length;
      // Stamped as the stage's base plus the key: one base for every frame, so that an encoder splits the
      // base timestamp once (not per frame, as frames of many flows alternate).
      // (An offset is never negative: a frame before the base is stamped with its own time.)
      if (key >= 0)
        this.write(v.target, s.bytes, ats[j]!, length, base, key, original < 0 ? undefined : original);
      else
        this.write(
          v.target,
          s.bytes,
          ats[j]!,
          length,
          base + BigInt(key),
          0,
          original < 0 ? undefined : original,
        );
      if (key > this.written) this.written = key;
      if (--s.live === 0 && s !== this.slab && s.bytes.length === SLAB_BYTES) this.spare.push(s);
      if (--v.held === 0 && v.ended) {
        this.endedWhileHeld(v.connId, -1);
        v.target.end?.();
      }
    }
    p.keep(order, i, wasSorted);
    this.sorted = true;
    return i;
  }

  /** Counts flows of a connection that ended with frames still held (`holds`). */
  endedWhileHeld(connId: string, delta: 1 | -1): void {
    const n = (this.endedHeld.get(connId) ?? 0) + delta;
    if (n > 0) this.endedHeld.set(connId, n);
    else this.endedHeld.delete(connId);
  }

  private write(
    target: Target,
    from: Uint8Array,
    at: number,
    length: number,
    ts: bigint,
    offsetNs: number,
    originalLength: number | undefined,
  ): void {
    if (target.beginAt !== undefined) {
      const to = target.beginAt(length);
      target.buffer!.set(from.subarray(at, at + length), to);
    } else target.begin(length).set(from.subarray(at, at + length));
    target.commit(ts, offsetNs, originalLength);
  }
}
