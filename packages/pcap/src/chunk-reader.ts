/**
 * Pull-based reading of exact byte counts from an `AsyncIterable<Uint8Array>`, tracking the absolute
 * offset. A read that lies inside one input chunk returns a view of it; only a read that spans chunks
 * copies. Nothing is buffered beyond what the caller asked for plus the rest of the last chunk pulled.
 */
export class ChunkReader {
  readonly #source: AsyncIterator<Uint8Array>;
  /** Chunks not fully consumed; `#chunks[#head]` is current, starting at `#position`. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  #position = 0;
  #buffered = 0;
  #done = false;
  /** Absolute offset of the next byte `take` returns. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  /** Bytes buffered and not yet taken. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Pulls chunks until `n` bytes are buffered or the input ends; returns the bytes available (<= n). */
  async ensure(n: number): Promise<number> {
    while (this.#buffered < n && !this.#done) {
      const next = await this.#source.next();
      if (next.done) {
        this.#done = true;
        break;
      }
      if (next.value.length === 0) continue;
      this.#chunks.push(next.value);
      this.#buffered += next.value.length;
    }
    return Math.min(n, this.#buffered);
  }

  /** Takes `n` buffered bytes (call `ensure` first). A view when they lie in one chunk, else a copy. */
  take(n: number): Uint8Array {
    if (n > this.#buffered) throw new RangeError(`take(${n}) with ${this.#buffered} bytes buffered`);
    const current = this.#chunks[this.#head];
    let out: Uint8Array;
    if (n === 0) {
      out = new Uint8Array(0);
    } else if (current !== undefined && current.length - this.#position >= n) {
      out = current.subarray(this.#position, this.#position + n);
      this.#advance(n);
    } else {
      out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.#chunks[this.#head]!;
        const count = Math.min(n - filled, chunk.length - this.#position);
        out.set(chunk.subarray(this.#position, this.#position + count), filled);
        filled += count;
        this.#advance(count);
      }
    }
    return out;
  }

  /** Returns a view of (or copy for) the next `n` buffered bytes without consuming them. */
  peek(n: number): Uint8Array {
    if (n > this.#buffered) throw new RangeError(`peek(${n}) with ${this.#buffered} bytes buffered`);
    const current = this.#chunks[this.#head];
    if (current !== undefined && current.length - this.#position >= n) {
      return current.subarray(this.#position, this.#position + n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    let index = this.#head;
    let position = this.#position;
    while (filled < n) {
      const chunk = this.#chunks[index]!;
      const count = Math.min(n - filled, chunk.length - position);
      out.set(chunk.subarray(position, position + count), filled);
      filled += count;
      index++;
      position = 0;
    }
    return out;
  }

  #advance(n: number): void {
    this.#position += n;
    this.#buffered -= n;
    this.offset += n;
    while (this.#head < this.#chunks.length && this.#position === this.#chunks[this.#head]!.length) {
      this.#head++;
      this.#position = 0;
    }
    // Drop consumed chunks now and then so the array does not grow with the file.
    if (this.#head > 64 || this.#head === this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Ends the underlying iterator early (e.g. after an error), releasing the source. */
  async close(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      await this.#source.return?.();
    }
  }
}

/** Wraps a whole buffer as a one-chunk source. */
export async function* singleChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
