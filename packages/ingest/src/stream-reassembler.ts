/**
 * Reassembly of one direction of a TCP connection, in stream offsets (0 = the first byte after the SYN).
 *
 * Lifecycle: `insert` 0..n times in capture order, each of which may emit chunks; `flush` at any time emits
 * the chunk being coalesced; `finish` exactly once at the end emits everything still buffered, holes
 * included. Emitted chunks come in increasing offset order, never overlap, and own their bytes (inputs are
 * copied when kept, so callers may reuse their buffers after `insert` returns).
 *
 * Policies:
 * - Retransmissions and overlaps: the bytes seen first win; later copies of a byte are dropped and counted
 *   in `duplicateBytes`.
 * - Out-of-order segments wait in a buffer capped at `maxBufferedBytes`. When the cap is exceeded the
 *   reassembler stops waiting for the oldest hole: it skips it (counted in `gapBytes` and
 *   `bufferOverflows`) and emits the buffered data at its true offsets. `finish` does the same for holes
 *   that never filled. A gap is therefore visible as a jump in offsets, never filled or spliced.
 * - Contiguous bytes are coalesced into chunks of at most `maxChunkBytes` spanning at most `maxChunkSpanNs`
 *   of capture time (a chunk being coalesced when a later byte comes beyond that is emitted first). A chunk's bytes were all seen
 *   within [timestampNs, timestampNs + spanNs]: `timestampNs` is when the earliest of them was seen (the
 *   chunk's first byte unless segments arrived out of order) and `spanNs` how much later the last one was.
 */

export interface StreamReassemblerOptions {
  /** Cap on out-of-order bytes held while waiting for a hole to fill. */
  readonly maxBufferedBytes: number;
  /** Largest chunk emitted; contiguous segments are joined up to this size. */
  readonly maxChunkBytes: number;
  /**
   * Longest time a chunk spans (its last byte seen at most this long after its first): a trickling stream
   * is cut here, so that a reader's window for chunk spans stays short. Default `MAX_CHUNK_SPAN_NS`.
   */
  readonly maxChunkSpanNs?: bigint;
}

/** Default `maxChunkSpanNs`: 100 ms. */
export const MAX_CHUNK_SPAN_NS = 100_000_000n;

export interface ReassembledChunk {
  readonly offset: number;
  readonly timestampNs: bigint;
  readonly spanNs: number;
  readonly payload: Uint8Array;
}

export interface ReassemblyCounters {
  /** Bytes dropped because they were already seen (retransmissions, overlaps). */
  duplicateBytes: number;
  /** Bytes never seen that the stream skipped over (holes). */
  gapBytes: number;
  /** Times the out-of-order buffer cap forced a hole to be skipped. */
  bufferOverflows: number;
}

interface Segment {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly timestampNs: bigint;
}

export class StreamReassembler {
  readonly #options: StreamReassemblerOptions;
  readonly #emit: (chunk: ReassembledChunk) => void;
  readonly #maxSpanNs: bigint;
  /** Out-of-order segments, sorted by offset, non-overlapping, all starting after `#next`. */
  #waiting: Segment[] = [];
  #waitingBytes = 0;
  /** The chunk being coalesced: copies of its parts, `#pendingLength` bytes at `#pendingOffset`. */
  #pending: Uint8Array[] = [];
  #pendingOffset = 0;
  #pendingLength = 0;
  #pendingFirstNs = 0n;
  #pendingLastNs = 0n;
  /** The offset up to which the stream has been delivered (to the pending chunk or emitted). */
  #next = 0;
  #finished = false;
  readonly counters: ReassemblyCounters = { duplicateBytes: 0, gapBytes: 0, bufferOverflows: 0 };

  constructor(options: StreamReassemblerOptions, emit: (chunk: ReassembledChunk) => void) {
    if (!(options.maxChunkBytes > 0) || !(options.maxBufferedBytes >= 0)) {
      throw new RangeError("maxChunkBytes must be positive and maxBufferedBytes not negative");
    }
    this.#options = options;
    this.#emit = emit;
    this.#maxSpanNs = options.maxChunkSpanNs ?? MAX_CHUNK_SPAN_NS;
  }

  /** The end of the contiguous stream delivered so far: the next offset expected. */
  get nextOffset(): number {
    return this.#next;
  }

  /** Bytes of the chunk being coalesced (not yet emitted). */
  get pendingBytes(): number {
    return this.#pendingLength;
  }

  /** Out-of-order bytes currently held. */
  get bufferedBytes(): number {
    return this.#waitingBytes;
  }

  /** Accepts `payload` at stream offset `offset` (>= 0), seen at `timestampNs`. */
  insert(offset: number, payload: Uint8Array, timestampNs: bigint): void {
    if (this.#finished) throw new Error("StreamReassembler: insert after finish");
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad stream offset ${offset}`);
    let start = offset;
    let data = payload;
    if (start < this.#next) {
      const dup = Math.min(this.#next - start, data.length);
      this.counters.duplicateBytes += dup;
      data = data.subarray(dup);
      start += dup;
    }
    if (data.length === 0) return;
    if (start === this.#next && this.#waiting.length === 0) {
      this.#deliver(start, data, timestampNs, false);
      return;
    }
    this.#buffer(start, data, timestampNs);
    this.#drain();
    while (this.#waitingBytes > this.#options.maxBufferedBytes) {
      this.counters.bufferOverflows++;
      this.#skipHole();
    }
  }

  /** Emits the chunk being coalesced, if any. */
  flush(): void {
    if (this.#pendingLength === 0) return;
    let payload: Uint8Array;
    if (this.#pending.length === 1) {
      payload = this.#pending[0]!;
    } else {
      payload = new Uint8Array(this.#pendingLength);
      let at = 0;
      for (const part of this.#pending) {
        payload.set(part, at);
        at += part.length;
      }
    }
    const chunk: ReassembledChunk = {
      offset: this.#pendingOffset,
      timestampNs: this.#pendingFirstNs,
      spanNs: Number(this.#pendingLastNs - this.#pendingFirstNs),
      payload,
    };
    this.#pending = [];
    this.#pendingLength = 0;
    this.#emit(chunk);
  }

  /** Gives up on every hole: emits all buffered data at its offsets, then the last chunk. */
  finish(): void {
    if (this.#finished) return;
    while (this.#waiting.length > 0) this.#skipHole();
    this.flush();
    this.#finished = true;
  }

  /** Inserts the parts of [start, start + data.length) not already waiting (the first-seen bytes win). */
  #buffer(start: number, data: Uint8Array, timestampNs: bigint): void {
    const end = start + data.length;
    const pieces: Segment[] = [];
    let cursor = start;
    for (const seg of this.#waiting) {
      const segEnd = seg.offset + seg.data.length;
      if (segEnd <= cursor) continue;
      if (seg.offset >= end) break;
      if (seg.offset > cursor) {
        pieces.push({ offset: cursor, data: data.slice(cursor - start, seg.offset - start), timestampNs });
      }
      const overlapEnd = Math.min(segEnd, end);
      this.counters.duplicateBytes += overlapEnd - Math.max(seg.offset, cursor);
      cursor = overlapEnd;
      if (cursor >= end) break;
    }
    if (cursor < end) pieces.push({ offset: cursor, data: data.slice(cursor - start), timestampNs });
    for (const piece of pieces) {
      let i = this.#waiting.length;
      while (i > 0 && this.#waiting[i - 1]!.offset > piece.offset) i--;
      this.#waiting.splice(i, 0, piece);
      this.#waitingBytes += piece.data.length;
    }
  }

  /** Delivers waiting segments that now continue the stream. */
  #drain(): void {
    while (this.#waiting.length > 0 && this.#waiting[0]!.offset === this.#next) {
      const seg = this.#waiting.shift()!;
      this.#waitingBytes -= seg.data.length;
      this.#deliver(seg.offset, seg.data, seg.timestampNs, true);
    }
  }

  /** Jumps over the hole before the first waiting segment and delivers what follows it. */
  #skipHole(): void {
    const first = this.#waiting[0];
    if (first === undefined) return;
    this.counters.gapBytes += first.offset - this.#next;
    this.flush();
    this.#next = first.offset;
    this.#drain();
  }

  /**
   * Appends contiguous bytes at `this.#next` to the pending chunk, emitting full chunks. `owned` says the
   * bytes are already a private copy (buffered segments); otherwise they are copied here.
   */
  #deliver(offset: number, data: Uint8Array, timestampNs: bigint, owned: boolean): void {
    const max = this.#options.maxChunkBytes;
    if (this.#pendingLength > 0 && timestampNs - this.#pendingFirstNs > this.#maxSpanNs) this.flush();
    let at = 0;
    while (at < data.length) {
      if (this.#pendingLength === 0) {
        this.#pendingOffset = offset + at;
        this.#pendingFirstNs = timestampNs;
        this.#pendingLastNs = timestampNs;
      }
      const count = Math.min(data.length - at, max - this.#pendingLength);
      const part = data.subarray(at, at + count);
      this.#pending.push(owned ? part : part.slice());
      this.#pendingLength += count;
      if (timestampNs < this.#pendingFirstNs) this.#pendingFirstNs = timestampNs;
      if (timestampNs > this.#pendingLastNs) this.#pendingLastNs = timestampNs;
      at += count;
      if (this.#pendingLength === max) this.flush();
    }
    this.#next = offset + data.length;
  }
}
