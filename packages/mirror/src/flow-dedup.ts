/**
 * Frames an egress already wrote are not written again (mirror-egress, in front of its sinks). The mesh is
 * at-least-once: a stitcher that dies, or stops with a connection open, leaves that connection's chunk
 * messages unacked, and the next stitcher rebuilds it from its first record, so its first frames reach the
 * egress twice. `FlowDedup` keeps, per flow (connection, variant, transport, endpoints), the digests of the
 * frames written, and drops a frame whose digest is there: a copy of a frame already written.
 *
 * Why digests and not a per-flow frame count: a rebuilt connection gets its records again from JetStream,
 * possibly in another order of messages, and the packet layout of a TCP flow (which ACK goes with which
 * segment) may then differ; skipping "the first n frames" could drop frames that were never written. A
 * digest drops only a frame that is, to 52 bits, the same frame (the bytes it reads, below) with the same
 * timestamp as one written;
 * anything that differs is written (a duplicate at worst, never a loss).
 *
 * Digest: two 32-bit FNV-style lanes over the frame's length, original length and timestamp, and over its
 * bytes, 4 at a time: all of its first 128 bytes (the link, IP and TCP or UDP headers: addresses, ports,
 * sequence and acknowledgment numbers, lengths, and the checksums, which are sums over the whole segment),
 * then every eighth word and the last 16 bytes; folded to 52 bits (a double). Frames are a stitcher's, so a
 * copy of a frame is the same bytes; two different frames of one flow with the same headers, checksums,
 * timestamp and lengths that differ only between the words read are not something a stitcher writes. The
 * sampling makes the digest four to five times cheaper on full-size frames than reading every byte (it was
 * a fifth of the egress's CPU). Journals written before it (every byte read) de-duplicate nothing after an
 * upgrade: a rebuilt connection's first frames are written twice, once. Key-log texts to embed are
 * de-duplicated the same way (by their text), so a rebuilt TLS flow does not embed its keys a second time.
 *
 * Bounded: at most `maxEntries` digests are kept (default 2,000,000, about 80 MiB at worst). Beyond it the
 * flows that ended longest ago are forgotten (`forgottenFlows`): a copy of a forgotten flow arriving later
 * is written again. When only open flows are left, new frames are written without keeping their digest
 * (`unrecordedFrames`). Both are counted, never silent. The state (`snapshot()`, `takeDelta()`, `load()`)
 * is what the egress persists beside its files, so a restarted egress keeps de-duplicating. Platform-neutral.
 */
import type { FrameFlowContext, FrameSink } from "@cloudtap/packet";
import type { ReplayTarget } from "./frame-batch.js";

export const DEFAULT_DEDUP_MAX_ENTRIES = 2_000_000;

export interface FlowDedupOptions {
  /** Most frame digests kept across flows. Default 2,000,000. */
  readonly maxEntries?: number;
}

/** What FlowDedup persists: per flow key, the digests added; flows forgotten; key-log digests. */
export interface FlowDedupState {
  readonly flows: readonly (readonly [key: string, digests: readonly number[], ended: boolean])[];
  readonly forgotten: readonly string[];
  readonly keyLogs: readonly number[];
}

export class FlowDedupStats {
  /** Frames handed on to the target. */
  written = 0;
  /** Frames dropped: their digest was written before. */
  duplicateFrames = 0;
  /** Key-log texts not embedded again. */
  duplicateKeyLogs = 0;
  /** Flows whose digests were dropped to stay within `maxEntries`. */
  forgottenFlows = 0;
  /** Frames written without a digest kept (only open flows were left to forget). */
  unrecordedFrames = 0;
}

interface FlowMarks {
  readonly digests: Set<number>;
  /** Copies of the flow open now. */
  open: number;
}

const P1 = 0x01000193;
const P2 = 0x5bd1e995;

/** The timestamp's two 32-bit halves without BigInt arithmetic (which allocates on every frame). */
const tsBits = new BigInt64Array(1);
const tsWords = new Int32Array(tsBits.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;

/** Words of a frame's start read whole by its digest (128 bytes: every header a stitcher writes). */
const HEAD_WORDS = 32;
/** Words of its end read whole (16 bytes). */
const TAIL_WORDS = 4;
/** In between, one word in this many. */
const STRIDE_WORDS = 8;

/** The word a digest reads after word `i`: every one before `head` and from `tail` on, one in eight between. */
export function nextWord(i: number, head: number, tail: number): number {
  if (i + 1 < head || i + 1 >= tail) return i + 1;
  return i + STRIDE_WORDS < tail ? i + STRIDE_WORDS : tail;
}

/** A 52-bit digest of a frame and its timestamp (exported for tests and the duplicate count of tests). */
export function frameDigest(bytes: Uint8Array, timestampNs: bigint, originalLength: number): number {
  let h1 = 0x811c9dc5 ^ bytes.length;
  let h2 = 0x9747b28c ^ originalLength;
  tsBits[0] = timestampNs; // stored modulo 2^64, as the halves were taken before
  const lo = tsWords[LO]!;
  const hi = tsWords[HI]!;
  h1 = Math.imul(h1 ^ lo, P1);
  h2 = Math.imul(h2 ^ hi, P2);
  h1 = Math.imul(h1 ^ hi, P1);
  h2 = Math.imul(h2 ^ lo, P2);
  const n = bytes.length;
  const words = n >>> 2;
  const head = words < HEAD_WORDS ? words : HEAD_WORDS;
  const tail = words - TAIL_WORDS > head ? words - TAIL_WORDS : head;
  // Words read as signed 32-bit integers and sums wrapped with `| 0`: the same bits as unsigned reads and
  // exact sums under Math.imul, with no value leaving the small-integer range. Aligned little-endian input
  // is read as an Int32Array.
  if (LITTLE_ENDIAN && (bytes.byteOffset & 3) === 0) {
    const w32 = new Int32Array(bytes.buffer, bytes.byteOffset, words);
    for (let i = 0; i < words; i = nextWord(i, head, tail)) {
      const w = w32[i]!;
      h1 = Math.imul(h1 ^ w, P1);
      h2 = Math.imul(((h2 ^ w) + (h2 >>> 15)) | 0, P2);
    }
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < words; i = nextWord(i, head, tail)) {
      const w = view.getInt32(i << 2, true);
      h1 = Math.imul(h1 ^ w, P1);
      h2 = Math.imul(((h2 ^ w) + (h2 >>> 15)) | 0, P2);
    }
  }
  for (let i = words << 2; i < n; i++) {
    const b = bytes[i]!;
    h1 = Math.imul(h1 ^ b, P1);
    h2 = Math.imul(((h2 ^ b) + (h2 >>> 15)) | 0, P2);
  }
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 13;
  return (h1 >>> 0) * 0x100000 + (h2 >>> 12);
}

function textDigest(text: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, P1);
    h2 = Math.imul((h2 ^ c) + (h2 >>> 15), P2);
  }
  return (h1 >>> 0) * 0x100000 + (h2 >>> 12);
}

/** The key of a flow: its connection, variant, transport and endpoints. */
export function flowKeyOf(c: FrameFlowContext): string {
  return `${c.connId}/${c.variant}/${c.transport}/${c.client.address}:${c.client.port}/${c.server.address}:${c.server.port}`;
}

/** A `ReplayTarget` in front of another that drops the frames it already handed on. */
export class FlowDedup implements ReplayTarget {
  readonly stats = new FlowDedupStats();
  private readonly flows = new Map<string, FlowMarks>();
  /** Flows with no open copy, oldest end first (the order they are forgotten in). */
  private readonly ended = new Map<string, true>();
  private readonly keyLogs = new Set<number>();
  private entries = 0;
  private readonly maxEntries: number;
  // A frame is digested in a buffer of its own before it reaches the target: a copy of one written before
  // must never be begun there (a pcapng writer refuses key logs while a frame is begun and not committed).
  private scratch = new Uint8Array(2048);
  private scratchLength = 0;
  /** Since the last `takeDelta()`. */
  private delta = new Map<string, number[]>();
  private deltaForgotten: string[] = [];
  private deltaKeyLogs: number[] = [];

  constructor(
    private readonly target: ReplayTarget,
    options: FlowDedupOptions = {},
  ) {
    this.maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_DEDUP_MAX_ENTRIES);
  }

  /** Digests kept now. */
  get size(): number {
    return this.entries;
  }

  get flowCount(): number {
    return this.flows.size;
  }

  begin(length: number): Uint8Array {
    return this.target.begin(length);
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.target.commit(timestampNs, offsetNs, originalLength);
    this.stats.written++;
  }

  embedKeys(keyLogText: string): void {
    const d = textDigest(keyLogText);
    if (this.keyLogs.has(d)) {
      this.stats.duplicateKeyLogs++;
      return;
    }
    this.keyLogs.add(d);
    this.deltaKeyLogs.push(d);
    this.target.embedKeys?.(keyLogText);
  }

  forFlow(context: FrameFlowContext): FrameSink & { end(): void } {
    const key = flowKeyOf(context);
    let marks = this.flows.get(key);
    if (!marks) {
      marks = { digests: new Set(), open: 0 };
      this.flows.set(key, marks);
    }
    const m = marks;
    m.open++;
    this.ended.delete(key);
    const inner = this.target.forFlow(context);
    let ended = false;
    /** A frame of this flow: dropped if its digest was written, else recorded and handed on. */
    const write = (frame: Uint8Array, ts: bigint, originalLength: number | undefined) => {
      const d = frameDigest(frame, ts, originalLength ?? frame.length);
      if (m.digests.has(d)) {
        this.stats.duplicateFrames++;
        return;
      }
      if (this.entries >= this.maxEntries) this.forget();
      if (this.entries < this.maxEntries) {
        m.digests.add(d);
        this.entries++;
        const list = this.delta.get(key);
        if (list) list.push(d);
        else this.delta.set(key, [d]);
      } else this.stats.unrecordedFrames++;
      inner.begin(frame.length).set(frame);
      inner.commit(ts, 0, originalLength);
      this.stats.written++;
    };
    return {
      begin: (length: number) => {
        if (this.scratch.length < length)
          this.scratch = new Uint8Array(Math.max(length, this.scratch.length * 2));
        this.scratchLength = length;
        return this.scratch.subarray(0, length);
      },
      commit: (timestampNs: bigint, offsetNs?: number, originalLength?: number) => {
        const ts = offsetNs ? timestampNs + BigInt(offsetNs) : timestampNs;
        write(this.scratch.subarray(0, this.scratchLength), ts, originalLength);
      },
      writeFrame: (bytes: Uint8Array, timestampNs: bigint, originalLength?: number) =>
        write(bytes, timestampNs, originalLength),
      end: () => {
        if (ended) return;
        ended = true;
        inner.end?.();
        m.open--;
        if (m.open <= 0 && this.flows.get(key) === m) {
          this.ended.set(key, true);
          if (!this.delta.has(key)) this.delta.set(key, []);
        }
      },
    };
  }

  /** Drops the digests of the flow that ended longest ago. */
  private forget(): void {
    const oldest = this.ended.keys().next();
    if (oldest.done) return;
    const key = oldest.value;
    this.ended.delete(key);
    const m = this.flows.get(key);
    this.flows.delete(key);
    this.delta.delete(key);
    if (m) this.entries -= m.digests.size;
    this.deltaForgotten.push(key);
    this.stats.forgottenFlows++;
  }

  /** What changed since the last call (flows with digests added or ended, flows forgotten, key logs). */
  takeDelta(): FlowDedupState {
    const flows = [...this.delta].map(([key, digests]) => [key, digests, this.ended.has(key)] as const);
    const out = { flows, forgotten: this.deltaForgotten, keyLogs: this.deltaKeyLogs };
    this.delta = new Map();
    this.deltaForgotten = [];
    this.deltaKeyLogs = [];
    return out;
  }

  /** The whole state (flows that ended come first, in the order they ended). */
  snapshot(): FlowDedupState {
    const flows: (readonly [string, readonly number[], boolean])[] = [];
    for (const key of this.ended.keys()) flows.push([key, [...this.flows.get(key)!.digests], true]);
    for (const [key, m] of this.flows) if (!this.ended.has(key)) flows.push([key, [...m.digests], false]);
    return { flows, forgotten: [], keyLogs: [...this.keyLogs] };
  }

  /**
   * Applies a persisted state (a snapshot, then deltas in order). A flow open when the state was written is
   * loaded as ended: no copy of it is open in this process.
   */
  load(state: FlowDedupState): void {
    for (const key of state.forgotten) {
      const m = this.flows.get(key);
      if (m) this.entries -= m.digests.size;
      this.flows.delete(key);
      this.ended.delete(key);
    }
    for (const [key, digests] of state.flows) {
      let m = this.flows.get(key);
      if (!m) {
        m = { digests: new Set(), open: 0 };
        this.flows.set(key, m);
      }
      for (const d of digests) {
        if (m.digests.has(d)) continue;
        m.digests.add(d);
        this.entries++;
      }
      this.ended.delete(key);
      this.ended.set(key, true);
    }
    for (const d of state.keyLogs) this.keyLogs.add(d);
    while (this.entries > this.maxEntries && this.ended.size > 0) this.forget();
    this.delta = new Map();
    this.deltaForgotten = [];
    this.deltaKeyLogs = [];
  }
}
