/**
 * A queue of input chunks that hands out contiguous byte ranges: a view into one chunk when the range lies
 * inside it (the common case), else one copy of exactly the bytes asked for.
 */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // read position inside chunks[0]
  private total = 0;
  /** Stream offset of the next unread byte. */
  position = 0;

  get available(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** `n` bytes from the read position without consuming them; requires `n <= available`. */
  peek(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.gather(n);
  }

  /** Like `peek`, then consumes them. */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  skip(n: number): void {
    this.total -= n;
    this.position += n;
    while (n > 0) {
      const first = this.chunks[0]!;
      const left = first.length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Offset (relative to the read position) of the next `byte` at or after `from`, or -1. */
  indexOf(byte: number, from: number): number {
    let base = 0;
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const start = i === 0 ? this.head : 0;
      const len = c.length - start;
      if (from < base + len) {
        const hit = c.indexOf(byte, start + Math.max(0, from - base));
        if (hit >= 0) return base + hit - start;
      }
      base += len;
    }
    return -1;
  }

  /**
   * Offset (relative to the read position) of the first byte equal to `first` where `test(bytes, at)` holds
   * for the `width` bytes from there; or of the first such byte with fewer than `width` bytes queued after it
   * (undecided until more input comes); -1 if neither. `test` is called on the chunk itself where the window
   * lies inside one (no copy, no allocation), so a run of `first` bytes costs one cheap test per byte.
   */
  findWindow(first: number, width: number, test: (bytes: Uint8Array, at: number) => boolean): number {
    let base = 0;
    const n = this.chunks.length;
    for (let i = 0; i < n; i++) {
      const c = this.chunks[i]!;
      const start = i === 0 ? this.head : 0;
      const inside = c.length - width;
      let j = start;
      for (; j <= inside; j++) {
        if (c[j] === first && test(c, j)) return base + j - start;
      }
      // Windows that straddle the chunk's end: gathered (at most width - 1 of them per chunk).
      for (; j < c.length; j++) {
        if (c[j] !== first) continue;
        const rel = base + j - start;
        if (this.total - rel < width) return rel;
        if (test(this.gatherAt(rel, width), 0)) return rel;
      }
      base += c.length - start;
    }
    return -1;
  }

  /** `n` bytes from `from` (relative to the read position) as one copy; requires `from + n <= available`. */
  private gatherAt(from: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    let skip = from;
    let p = 0;
    for (let i = 0; p < n; i++) {
      const c = this.chunks[i]!;
      let start = i === 0 ? this.head : 0;
      const len = c.length - start;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      start += skip;
      skip = 0;
      const k = Math.min(n - p, c.length - start);
      out.set(c.subarray(start, start + k), p);
      p += k;
    }
    return out;
  }

  /** Everything still queued, as chunks (for handing the rest of a stream to a decompressor). */
  drain(): Uint8Array[] {
    const out = this.chunks.map((c, i) => (i === 0 ? c.subarray(this.head) : c));
    this.position += this.total;
    this.chunks = [];
    this.head = 0;
    this.total = 0;
    return out;
  }

  private gather(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let p = 0;
    for (let i = 0; p < n; i++) {
      const c = this.chunks[i]!;
      const start = i === 0 ? this.head : 0;
      const k = Math.min(n - p, c.length - start);
      out.set(c.subarray(start, start + k), p);
      p += k;
    }
    return out;
  }
}
