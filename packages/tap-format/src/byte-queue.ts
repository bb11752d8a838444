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
