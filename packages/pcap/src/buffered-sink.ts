import type { ByteSink } from "./byte-sink.js";

/**
 * Gathers small writes into chunks of about `chunkBytes` before handing them to the sink, so that a file
 * of small packets does not become one sink call per header. Chunks handed over are never reused.
 */
export class BufferedSink {
  readonly #sink: ByteSink;
  readonly #chunkBytes: number;
  #buffer: Uint8Array;
  #used = 0;
  /** Bytes accepted so far (buffered or passed on). */
  bytesWritten = 0;

  constructor(sink: ByteSink, chunkBytes: number) {
    this.#sink = sink;
    this.#chunkBytes = chunkBytes;
    this.#buffer = new Uint8Array(chunkBytes);
  }

  /** Reserves `n` bytes in the buffer for the caller to fill; flush first when they do not fit. */
  async reserve(n: number): Promise<Uint8Array> {
    if (this.#used + n > this.#buffer.length) await this.flush();
    if (n > this.#buffer.length) {
      // Larger than a chunk: give it its own buffer, passed on at the next flush.
      this.#buffer = new Uint8Array(n);
    }
    const out = this.#buffer.subarray(this.#used, this.#used + n);
    this.#used += n;
    this.bytesWritten += n;
    return out;
  }

  async write(bytes: Uint8Array): Promise<void> {
    (await this.reserve(bytes.length)).set(bytes);
  }

  async flush(): Promise<void> {
    if (this.#used === 0) return;
    const chunk = this.#buffer.subarray(0, this.#used);
    this.#buffer = new Uint8Array(this.#chunkBytes);
    this.#used = 0;
    await this.#sink.write(chunk);
  }
}
