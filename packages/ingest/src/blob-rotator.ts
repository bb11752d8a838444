import type { ObjectStore } from "@cloudtap/object-store";
import {
  type CtapWriter,
  createCtapWriter,
  dataBlobKey,
  MemorySink,
  type TapRecord,
} from "@cloudtap/tap-format";
import type { WrittenBlob } from "./summary.js";

export interface BlobRotatorOptions {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly tapperId: string;
  /** A blob is closed once its frames reach this many bytes (measured before compression). */
  readonly maxBlobBytes: number;
  readonly compression: "none" | "gzip";
  /** Sequence number of the first blob; later blobs count up from it. */
  readonly firstSequence: bigint;
  readonly signal?: AbortSignal;
}

/**
 * Writes records into CTAP blobs, starting a new blob when the current one reaches `maxBlobBytes`. A blob
 * is built in memory (at most `maxBlobBytes` plus one record) and stored whole, so a reader never sees a
 * partial blob. Its key comes from the time of its first record and its sequence number.
 */
export class BlobRotator {
  readonly #options: BlobRotatorOptions;
  #sequence: bigint;
  #current:
    | { writer: CtapWriter; sink: MemorySink; startNs: bigint; endNs: bigint; records: number }
    | undefined;
  readonly blobs: WrittenBlob[] = [];

  constructor(options: BlobRotatorOptions) {
    if (!(options.maxBlobBytes > 0))
      throw new RangeError(`maxBlobBytes must be positive, got ${options.maxBlobBytes}`);
    this.#options = options;
    this.#sequence = options.firstSequence;
  }

  async write(record: TapRecord): Promise<void> {
    if (this.#current === undefined) {
      const sink = new MemorySink();
      const writer = createCtapWriter(sink, {
        tapperId: this.#options.tapperId,
        sequence: this.#sequence,
        startNs: record.timestampNs,
        compression: this.#options.compression,
      });
      this.#current = { writer, sink, startNs: record.timestampNs, endNs: record.timestampNs, records: 0 };
    }
    const current = this.#current;
    await current.writer.write(record);
    current.records++;
    if (record.timestampNs > current.endNs) current.endNs = record.timestampNs;
    if (current.writer.frameBytes >= this.#options.maxBlobBytes) await this.close();
  }

  /** Finishes and stores the current blob, if any. */
  async close(): Promise<void> {
    const current = this.#current;
    if (current === undefined) return;
    this.#current = undefined;
    await current.writer.finish(current.endNs);
    const key = dataBlobKey(this.#options.prefix, this.#options.tapperId, current.startNs, this.#sequence);
    const body = current.sink.bytes();
    await this.#options.store.write(key, body, this.#options.signal ? { signal: this.#options.signal } : {});
    this.blobs.push({
      key,
      bytes: body.length,
      records: current.records,
      startNs: current.startNs,
      endNs: current.endNs,
    });
    this.#sequence++;
  }
}
