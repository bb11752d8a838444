/**
 * Pull-style reading from a byte stream (a socket): read up to a delimiter, read or skip exact lengths. At most
 * `highWaterMark` bytes are buffered; beyond that the source is paused until the reader catches up.
 */
import type { Readable } from "node:stream";

export class UnexpectedEndError extends Error {
  override readonly name = "UnexpectedEndError";
}

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly source: Readable,
    private readonly highWaterMark = 256 * 1024,
  ) {
    source.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= this.highWaterMark) source.pause();
      this.notify();
    });
    source.on("end", () => {
      this.ended = true;
      this.notify();
    });
    source.on("close", () => {
      this.ended = true;
      this.notify();
    });
    source.on("error", (err) => {
      this.failure ??= err;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits for more bytes; false when the stream ended (or failed) with nothing more to come. */
  private async more(): Promise<boolean> {
    if (this.failure) throw this.failure;
    if (this.ended) return false;
    // The caller needs bytes beyond what is buffered: let at least one more chunk in, whatever the mark.
    if (this.source.isPaused()) this.source.resume();
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    if (this.failure) throw this.failure;
    return !this.ended || this.buffered > 0;
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    if (this.buffered < this.highWaterMark && this.source.isPaused() && !this.ended) this.source.resume();
    return out;
  }

  /** True when the stream ended and every byte was read. */
  async atEnd(): Promise<boolean> {
    while (this.buffered === 0) {
      if (!(await this.more())) return this.buffered === 0;
    }
    return false;
  }

  /**
   * Bytes up to `delimiter`, without it (the delimiter is consumed). Undefined when the stream ends cleanly
   * before any byte; throws when it ends mid-way or `maxBytes` pass without the delimiter.
   */
  async readUntil(delimiter: string, maxBytes: number): Promise<Buffer | undefined> {
    const delim = Buffer.from(delimiter, "latin1");
    for (;;) {
      if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
      const buf = this.chunks[0];
      const at = buf ? buf.indexOf(delim) : -1;
      if (at >= 0) {
        const out = this.take(at);
        this.take(delim.length);
        return out;
      }
      if (this.buffered > maxBytes)
        throw new RangeError(`no "${JSON.stringify(delimiter)}" within ${maxBytes} bytes`);
      if (!(await this.more())) {
        if (this.buffered === 0) return undefined;
        throw new UnexpectedEndError(`stream ended inside a line (${this.buffered} bytes unterminated)`);
      }
    }
  }

  /** Exactly `n` bytes. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n) {
      if (!(await this.more()))
        throw new UnexpectedEndError(`stream ended with ${this.buffered} of ${n} bytes`);
    }
    return n === 0 ? Buffer.alloc(0) : this.take(n);
  }

  /** Consumes exactly `n` bytes, passing them to `onChunk` piece by piece (nothing is concatenated). */
  async skip(n: number, onChunk?: (chunk: Buffer) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.more())) {
        throw new UnexpectedEndError(`stream ended with ${n - left} of ${n} bytes`);
      }
      if (this.buffered === 0) continue;
      const piece = this.take(Math.min(left, this.chunks[0]!.length));
      onChunk?.(piece);
      left -= piece.length;
    }
  }
}
