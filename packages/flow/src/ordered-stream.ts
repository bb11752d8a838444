/**
 * One direction of one connection: bytes arrive as chunks at byte offsets, in any order, duplicated or
 * overlapping; they leave in order, exactly once, with every hole reported as a gap.
 *
 * Rules:
 * - Bytes below `next` (already released) are duplicates: counted, dropped. They cannot be compared with what
 *   was released, since released bytes are not kept.
 * - Bytes overlapping a buffered (not yet released) segment: the first seen wins; bytes that differ from it are
 *   counted as `overlapMismatchBytes`.
 * - A chunk that starts at `next` is released at once as a view of the caller's bytes (no copy); anything
 *   buffered that becomes contiguous follows it. Out-of-order chunks are copied into the buffer.
 * - A hole is released as a gap only when the caller says so (`releaseHole`, `finish`): the flow table decides
 *   from record time and caps.
 */

export interface StreamOutput {
  data(direction: 0 | 1, offset: number, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void;
  gap(direction: 0 | 1, offset: number, length: number, timestampNs: bigint): void;
}

interface StreamCounts {
  duplicateBytes: number;
  overlapMismatchBytes: number;
  gapCount: number;
  gapBytes: number;
}

interface Segment {
  start: number;
  bytes: Uint8Array;
  timestampNs: bigint;
  spanNs: number;
}

export class OrderedStream {
  constructor(
    /** Passed to the output with every event, so one output can serve both directions. */
    readonly direction: 0 | 1 = 0,
  ) {}

  /** Next offset to release: everything below it has been released (as data or as gap). */
  next = 0;
  bufferedBytes = 0;
  /** Buffered segments, sorted by start, non-overlapping, all starting above `next`. Allocated on first use. */
  private pending: Segment[] | undefined;
  /** Duplicates, mismatches and gaps, allocated on the first (an idle stream is two objects per flow). */
  private counts: StreamCounts | undefined;

  get duplicateBytes(): number {
    return this.counts?.duplicateBytes ?? 0;
  }

  get overlapMismatchBytes(): number {
    return this.counts?.overlapMismatchBytes ?? 0;
  }

  get gapCount(): number {
    return this.counts?.gapCount ?? 0;
  }

  get gapBytes(): number {
    return this.counts?.gapBytes ?? 0;
  }

  private count(): StreamCounts {
    this.counts ??= { duplicateBytes: 0, overlapMismatchBytes: 0, gapCount: 0, gapBytes: 0 };
    return this.counts;
  }

  /** Bytes released as data: everything below `next` that was not a gap. */
  get releasedBytes(): number {
    return this.next - this.gapBytes;
  }

  get hasPending(): boolean {
    return this.pending !== undefined && this.pending.length > 0;
  }

  /** Record time of the oldest buffered segment waiting behind a hole. */
  get waitingSinceNs(): bigint | undefined {
    const p = this.pending;
    if (!p || p.length === 0) return undefined;
    let min = p[0]!.timestampNs;
    for (let i = 1; i < p.length; i++) if (p[i]!.timestampNs < min) min = p[i]!.timestampNs;
    return min;
  }

  /**
   * Accepts a chunk. With `hold` set (the consumer does not exist yet) nothing is released and in-order bytes
   * are buffered too. Returns the change in buffered bytes.
   */
  accept(
    offset: number,
    bytes: Uint8Array,
    timestampNs: bigint,
    spanNs: number,
    out: StreamOutput | undefined,
  ): number {
    let start = offset;
    let b = bytes;
    const end = start + b.length;
    if (end <= this.next) {
      this.count().duplicateBytes += b.length;
      return 0;
    }
    if (start < this.next) {
      this.count().duplicateBytes += this.next - start;
      b = b.subarray(this.next - start);
      start = this.next;
    }
    if (start === this.next && out && !this.hasPending) {
      this.emit(start, b, timestampNs, spanNs, out);
      return 0;
    }
    const before = this.bufferedBytes;
    this.insert(start, b, timestampNs, spanNs);
    if (out) this.drain(out);
    return this.bufferedBytes - before;
  }

  /** Releases whatever is contiguous at `next`. Returns the change in buffered bytes (<= 0). */
  drain(out: StreamOutput): number {
    const p = this.pending;
    if (!p) return 0;
    const before = this.bufferedBytes;
    let i = 0;
    while (i < p.length && p[i]!.start === this.next) {
      const s = p[i]!;
      this.bufferedBytes -= s.bytes.length;
      this.emit(s.start, s.bytes, s.timestampNs, s.spanNs, out);
      i++;
    }
    if (i > 0) p.splice(0, i);
    return this.bufferedBytes - before;
  }

  /**
   * Gives up on the hole at `next`: reports it as a gap and releases what follows it, up to the next hole.
   * Returns the change in buffered bytes. No-op when nothing waits behind a hole.
   */
  releaseHole(out: StreamOutput): number {
    const first = this.pending?.[0];
    if (!first) return 0;
    if (first.start > this.next) this.skipTo(first.start, first.timestampNs, out);
    return this.drain(out);
  }

  /**
   * Releases everything: every hole becomes a gap, and when the direction's total length is known, missing
   * bytes at the end become a final gap. Returns the change in buffered bytes.
   */
  finish(out: StreamOutput, totalBytes: number | undefined, nowNs: bigint): number {
    let delta = 0;
    while (this.hasPending) delta += this.releaseHole(out);
    if (totalBytes !== undefined && totalBytes > this.next) this.skipTo(totalBytes, nowNs, out);
    return delta;
  }

  private skipTo(offset: number, timestampNs: bigint, out: StreamOutput): void {
    const length = offset - this.next;
    const c = this.count();
    c.gapCount++;
    c.gapBytes += length;
    out.gap(this.direction, this.next, length, timestampNs);
    this.next = offset;
  }

  private emit(
    offset: number,
    bytes: Uint8Array,
    timestampNs: bigint,
    spanNs: number,
    out: StreamOutput,
  ): void {
    this.next = offset + bytes.length;
    if (bytes.length > 0) out.data(this.direction, offset, bytes, timestampNs, spanNs);
  }

  /** Inserts `[start, start + b.length)` into the buffer where no segment holds those bytes yet. */
  private insert(start: number, b: Uint8Array, timestampNs: bigint, spanNs: number): void {
    if (b.length === 0) return;
    this.pending ??= [];
    const p = this.pending;
    const end = start + b.length;
    // First segment that ends after `start`.
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const s = p[mid]!;
      if (s.start + s.bytes.length <= start) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    let cursor = start;
    const pieces: Segment[] = [];
    while (i < p.length && p[i]!.start < end) {
      const s = p[i]!;
      const sEnd = s.start + s.bytes.length;
      if (s.start > cursor) pieces.push(this.piece(b, start, cursor, s.start, timestampNs, spanNs));
      const oStart = Math.max(cursor, s.start);
      const oEnd = Math.min(end, sEnd);
      let mismatch = 0;
      for (let k = oStart; k < oEnd; k++) if (b[k - start] !== s.bytes[k - s.start]) mismatch++;
      const c = this.count();
      c.overlapMismatchBytes += mismatch;
      c.duplicateBytes += Math.max(0, oEnd - oStart);
      cursor = Math.max(cursor, sEnd);
      i++;
    }
    if (cursor < end) pieces.push(this.piece(b, start, cursor, end, timestampNs, spanNs));
    if (pieces.length === 0) return;
    // Pieces fall between lo and i, in order; segments lo..i-1 stay where they are.
    let at = lo;
    for (const piece of pieces) {
      while (at < p.length && p[at]!.start < piece.start) at++;
      p.splice(at, 0, piece);
      at++;
    }
  }

  private piece(
    b: Uint8Array,
    base: number,
    from: number,
    to: number,
    timestampNs: bigint,
    spanNs: number,
  ): Segment {
    // A copy: the caller's bytes are only valid during the call.
    const bytes = b.slice(from - base, to - base);
    this.bufferedBytes += bytes.length;
    return { start: from, bytes, timestampNs, spanNs };
  }
}
