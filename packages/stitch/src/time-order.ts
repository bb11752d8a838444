/**
 * Puts the frames of all flows in time order before they reach the sink: a bounded reorder window driven
 * by record time (a watermark).
 *
 * Why: the stitcher emits a flow's packets when its records are released, and blobs of several tappers
 * (or a chunk's segments spread over its span) interleave flows out of time order, so a capture file read
 * by time (reordercap, mergecap, Zeek, a paced tunnel) would see another order than the file's.
 *
 * Lifecycle: the stitcher opens each flow (`open(connId, sink)`: a flow number, no object per flow, so an
 * idle connection stays small); a synthesizer builds its frames in this stage's slabs (`beginAt`/`buffer`)
 * and commits them for its flow (`commitFlow`), where they are indexed by time (`view` wraps a flow as a
 * plain FrameSink). `release(upToNs)` passes every held
 * frame stamped at or before `upToNs` on to its flow's sink, in time order (stable: frames of equal time
 * keep their order, so a flow's packets never swap); `releaseAll()` passes everything (the input ended).
 * A flow's end (`endFlow`) reaches its sink once its last held frame is out.
 *
 * Bounds and counters: at most `maxBytes` of frames are held; beyond it the oldest are released early
 * (`capReleases`). A frame stamped earlier than a frame already released cannot be put in order any more:
 * it is written at once, out of order, and counted (`lateFrames`); nothing is dropped.
 * Cost: frames are held in parallel typed arrays (no object per frame or per flow); a release sorts only
 * the frames it passes on (the rest stay in commit order), by (time, commit index) packed in one double.
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
/** Frames held at once that a packed sort can index (key * INDEX_BITS + index, exact in a double). */
const INDEX_BITS = 2 ** 20;
/** Key range a packed sort can hold: INDEX_BITS * 2^32 = 2^52 < 2^53. */
const PACKED_RANGE = 2 ** 32;

interface Slab {
  readonly bytes: Uint8Array;
  readonly id: number;
  used: number;
  /** Frames in this slab not yet released. */
  live: number;
}

/**
 * The held frames, as parallel typed arrays (no object per frame: frames stay held across collections), in
 * commit order, except after an early release at the byte cap (then in key order).
 */
class HeldFrames {
  length = 0;
  /** Time relative to the stage's base, in ns (a Number, below 2^50: exact). */
  keys = new Float64Array(1024);
  ats = new Int32Array(1024);
  lengths = new Int32Array(1024);
  /** The frame's length on the wire, -1: its captured length. */
  originals = new Int32Array(1024);
  slabs = new Int32Array(1024);
  flows = new Int32Array(1024);

  push(key: number, slab: number, at: number, length: number, original: number, flow: number): void {
    const i = this.length++;
    if (i === this.keys.length) this.grow(i * 2);
    this.keys[i] = key;
    this.ats[i] = at;
    this.lengths[i] = length;
    this.originals[i] = original;
    this.slabs[i] = slab;
    this.flows[i] = flow;
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
    this.slabs = i32(this.slabs);
    this.flows = i32(this.flows);
  }

  /** Moves frame `from` to slot `to` (to <= from). */
  move(from: number, to: number): void {
    this.keys[to] = this.keys[from]!;
    this.ats[to] = this.ats[from]!;
    this.lengths[to] = this.lengths[from]!;
    this.originals[to] = this.originals[from]!;
    this.slabs[to] = this.slabs[from]!;
    this.flows[to] = this.flows[from]!;
  }
}

/** One flow of a time-order stage as a plain FrameSink (for synthesizers that take one, and tests). */
class FlowView implements FrameSink {
  constructor(
    private readonly order: TimeOrder,
    private readonly flow: number,
  ) {}

  get buffer(): Uint8Array {
    return this.order.buffer;
  }

  beginAt(length: number): number {
    return this.order.beginAt(length);
  }

  begin(length: number): Uint8Array {
    const at = this.order.beginAt(length);
    return this.order.buffer.subarray(at, at + length);
  }

  commit(timestampNs: bigint, offsetNs = 0, originalLength?: number): void {
    this.order.commitFlow(this.flow, timestampNs, offsetNs, originalLength);
  }

  end(): void {
    this.order.endFlow(this.flow);
  }
}

export interface TimeOrderOptions {
  /** Most bytes of frames held. Default 64 MiB. */
  readonly maxBytes?: number;
}

export class TimeOrder {
  private slab: Slab;
  private readonly slabTable: Slab[] = [];
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
  /** The frame being built: its offset in the current slab and its length. */
  private at = -1;
  private length = 0;
  /** Open flows by number: sink, connection id, frames held, ended (its end waits for its frames). */
  private targets: (Target | undefined)[] = [];
  private conns: (string | undefined)[] = [];
  private flowHeld = new Int32Array(256);
  private flowEnded = new Uint8Array(256);
  private readonly freeFlows: number[] = [];
  /** Flows that ended with frames still held, by connection id. */
  private readonly endedHeld = new Map<string, number>();
  private packed = new Float64Array(1024);

  constructor(
    options: TimeOrderOptions = {},
    readonly stats: TimeOrderStats = new TimeOrderStats(),
  ) {
    this.maxBytes = options.maxBytes ?? DEFAULT_TIME_ORDER_MAX_BYTES;
    this.slab = this.newSlab(SLAB_BYTES);
  }

  /** Opens a flow whose frames go to `target`: its number, for `commitFlow` and `endFlow`. */
  open(connId: string, target: Target): number {
    let flow = this.freeFlows.pop();
    if (flow === undefined) {
      flow = this.targets.length;
      if (flow === this.flowHeld.length) {
        const held = new Int32Array(flow * 2);
        held.set(this.flowHeld);
        this.flowHeld = held;
        const ended = new Uint8Array(flow * 2);
        ended.set(this.flowEnded);
        this.flowEnded = ended;
      }
      this.targets.push(target);
      this.conns.push(connId);
    } else {
      this.targets[flow] = target;
      this.conns[flow] = connId;
    }
    this.flowHeld[flow] = 0;
    this.flowEnded[flow] = 0;
    return flow;
  }

  /** The sink for one flow's frames, in front of `target` (a FlowView over `open`). */
  view(connId: string, target: Target): FrameSink & { end(): void } {
    return new FlowView(this, this.open(connId, target));
  }

  /** Whether frames of this connection are still held after its sink ended. */
  holds(connId: string): boolean {
    return this.endedHeld.has(connId);
  }

  get heldFrames(): number {
    return this.pending.length;
  }

  /** The buffer frames are built in (valid until the next `beginAt`). */
  get buffer(): Uint8Array {
    return this.slab.bytes;
  }

  private newSlab(size: number): Slab {
    const reuse = size <= SLAB_BYTES ? this.spare.pop() : undefined;
    if (reuse) {
      reuse.used = 0;
      reuse.live = 0;
      return reuse;
    }
    const slab = {
      bytes: new Uint8Array(Math.max(size, SLAB_BYTES)),
      id: this.slabTable.length,
      used: 0,
      live: 0,
    };
    this.slabTable.push(slab);
    return slab;
  }

  /** Room for a frame of `length` bytes in `buffer`; its offset. */
  beginAt(length: number): number {
    let s = this.slab;
    if (s.used + length > s.bytes.length) {
      if (s.live === 0 && s.bytes.length >= length) s.used = 0;
      else {
        s = this.newSlab(length);
        this.slab = s;
      }
    }
    this.at = s.used;
    this.length = length;
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

  /** Commits the frame built at the last `beginAt` for `flow`, stamped `ts + offsetNs`. */
  commitFlow(flow: number, ts: bigint, offsetNs = 0, originalLength?: number): void {
    const slab = this.slab;
    const at = this.at;
    const length = this.length;
    const key = this.keyOf(ts) + offsetNs;
    this.stats.frames++;
    if (key < this.written) {
      // Too late to be put in order: written now, counted.
      this.stats.lateFrames++;
      const lateness = this.written - key;
      if (lateness > this.stats.maxLatenessNs) this.stats.maxLatenessNs = lateness;
      this.write(this.targets[flow]!, slab.bytes, at, length, ts, offsetNs, originalLength);
      return;
    }
    slab.used = at + length;
    slab.live++;
    this.flowHeld[flow]!++;
    const p = this.pending;
    if (this.sorted && p.length > 0 && key < p.keys[p.length - 1]!) this.sorted = false;
    p.push(key, slab.id, at, length, originalLength ?? -1, flow);
    this.heldBytes += length;
    if (this.heldBytes > this.stats.peakHeldBytes) this.stats.peakHeldBytes = this.heldBytes;
    if (this.heldBytes > this.maxBytes) this.releaseOldest(this.maxBytes >> 1);
  }

  /** The flow's synthesizer is done: its sink's `end` follows its last held frame. */
  endFlow(flow: number): void {
    if (this.flowEnded[flow] === 1) return;
    if (this.flowHeld[flow] === 0) {
      const target = this.targets[flow]!;
      this.closeFlow(flow);
      target.end?.();
    } else {
      this.flowEnded[flow] = 1;
      this.endedWhileHeld(this.conns[flow]!, 1);
    }
  }

  private closeFlow(flow: number): void {
    this.targets[flow] = undefined;
    this.conns[flow] = undefined;
    this.flowEnded[flow] = 1;
    this.freeFlows.push(flow);
  }

  /** Passes every frame stamped at or before `upToNs` on, in time order. */
  release(upToNs: bigint): void {
    if (this.pending.length === 0 || this.base === undefined) return;
    this.releaseUpTo(Number(upToNs - this.base));
  }

  /** Passes every held frame on, in time order (the input ended). */
  releaseAll(): void {
    this.releaseUpTo(Number.POSITIVE_INFINITY);
  }

  /**
   * Releases the held frames whose key is at most `upToKey`, in key order (equal keys in commit order); the
   * others stay, in commit order.
   */
  private releaseUpTo(upToKey: number): void {
    const p = this.pending;
    const n = p.length;
    if (n === 0) return;
    const keys = p.keys;
    if (this.sorted) {
      let i = 0;
      while (i < n && keys[i]! <= upToKey) this.pass(i++);
      this.compactSorted(i);
      return;
    }
    // Which frames go, and their key range.
    let count = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (k > upToKey) continue;
      count++;
      if (k < min) min = k;
      if (k > max) max = k;
    }
    if (count === 0) return;
    if (n < INDEX_BITS && max - min < PACKED_RANGE) {
      // (key, index) packed in one double and sorted natively: no comparator call per comparison.
      if (this.packed.length < count) this.packed = new Float64Array(Math.max(count, this.packed.length * 2));
      const packed = this.packed.subarray(0, count);
      for (let i = 0, j = 0; i < n; i++) {
        const k = keys[i]!;
        if (k <= upToKey) packed[j++] = (k - min) * INDEX_BITS + i;
      }
      packed.sort();
      for (let j = 0; j < count; j++) {
        const v = packed[j]!;
        this.pass(v - Math.floor(v / INDEX_BITS) * INDEX_BITS);
      }
    } else {
      const order: number[] = [];
      for (let i = 0; i < n; i++) if (keys[i]! <= upToKey) order.push(i);
      order.sort((x, y) => keys[x]! - keys[y]! || x - y);
      for (const i of order) this.pass(i);
    }
    // The rest stay in commit order (stable for the next release); are they in key order now?
    let w = 0;
    let sorted = true;
    let last = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const k = keys[i]!;
      if (k <= upToKey) continue;
      if (k < last) sorted = false;
      last = k;
      if (w !== i) p.move(i, w);
      w++;
    }
    p.length = w;
    this.sorted = sorted;
  }

  /** Drops the first `from` frames of a sorted `pending` (already passed on). */
  private compactSorted(from: number): void {
    const p = this.pending;
    const n = p.length;
    if (from === 0) return;
    if (from < n) {
      p.keys.copyWithin(0, from, n);
      p.ats.copyWithin(0, from, n);
      p.lengths.copyWithin(0, from, n);
      p.originals.copyWithin(0, from, n);
      p.slabs.copyWithin(0, from, n);
      p.flows.copyWithin(0, from, n);
    }
    p.length = n - from;
  }

  /** Releases the oldest frames (by key) until at most `keepBytes` are held; the rest stay in key order. */
  private releaseOldest(keepBytes: number): void {
    const p = this.pending;
    const n = p.length;
    const keys = p.keys;
    const order = Array.from({ length: n }, (_, i) => i);
    if (!this.sorted) order.sort((x, y) => keys[x]! - keys[y]! || x - y);
    let i = 0;
    while (i < n && this.heldBytes > keepBytes) this.pass(order[i++]!);
    this.stats.capReleases += i;
    // The rest, in key order (scratch copies: this happens only at the cap).
    const rest = order.slice(i);
    const k = Float64Array.from(rest, (j) => keys[j]!);
    const gather = (a: Int32Array) => Int32Array.from(rest, (j) => a[j]!);
    const [ats, lengths, originals, slabs, flows] = [p.ats, p.lengths, p.originals, p.slabs, p.flows].map(
      gather,
    );
    p.keys.set(k);
    p.ats.set(ats!);
    p.lengths.set(lengths!);
    p.originals.set(originals!);
    p.slabs.set(slabs!);
    p.flows.set(flows!);
    const left = rest.length;
    p.length = left;
    this.sorted = true;
  }

  /** Passes held frame `i` on to its flow's sink. */
  private pass(i: number): void {
    const p = this.pending;
    const key = p.keys[i]!;
    const length = p.lengths[i]!;
    const original = p.originals[i]!;
    const s = this.slabTable[p.slabs[i]!]!;
    const flow = p.flows[i]!;
    const target = this.targets[flow]!;
    this.heldBytes -= length;
    // Stamped as the stage's base plus the key: one base for every frame, so that an encoder splits the
    // base timestamp once (not per frame, as frames of many flows alternate).
    // (An offset is never negative: a frame before the base is stamped with its own time.)
    if (key >= 0)
      this.write(target, s.bytes, p.ats[i]!, length, this.base!, key, original < 0 ? undefined : original);
    else
      this.write(
        target,
        s.bytes,
        p.ats[i]!,
        length,
        this.base! + BigInt(key),
        0,
        original < 0 ? undefined : original,
      );
    if (key > this.written) this.written = key;
    if (--s.live === 0 && s !== this.slab && s.bytes.length === SLAB_BYTES) this.spare.push(s);
    if (--this.flowHeld[flow]! === 0 && this.flowEnded[flow] === 1) {
      this.endedWhileHeld(this.conns[flow]!, -1);
      this.closeFlow(flow);
      target.end?.();
    }
  }

  /** Counts flows of a connection that ended with frames still held (`holds`). */
  private endedWhileHeld(connId: string, delta: 1 | -1): void {
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
    // A view made by the constructor (slabs start at offset 0 of their buffer) costs less than subarray's.
    const frame = new Uint8Array(from.buffer, at, length);
    if (target.beginAt !== undefined) {
      const to = target.beginAt(length); // first: it may move the sink to a new buffer
      target.buffer!.set(frame, to);
    } else target.begin(length).set(frame);
    target.commit(ts, offsetNs, originalLength);
  }
}
