/**
 * Synchronous pcap and pcapng encoders for the packet-synthesis hot path: a frame is built directly in the
 * output chunk (`begin` hands out the space after the record header, `commit` fills the header in), so there
 * is no copy and no object per packet. Full chunks are collected; the caller passes them on to a byte sink
 * asynchronously with `drain()` (full chunks only) or `flush()` (everything, including the partial chunk).
 *
 * Flush semantics: bytes reach the caller only through `drain()` / `flush()`. A file is complete and valid
 * after `flush()` and writing every returned chunk, in order. Chunks returned are never reused.
 */
import { SecretsType } from "./capture-item.js";
import { PcapWriteError, PcapWriteErrorCode } from "./errors.js";
import { PcapMagic } from "./pcap-reader.js";
import { DEFAULT_SNAP_LENGTH } from "./pcap-writer.js";
import { PCAPNG_BYTE_ORDER_MAGIC, PcapngBlockType, PcapngOption } from "./pcapng-reader.js";

export interface CaptureEncoder {
  /** Space for the next frame of `length` bytes, inside the output chunk. */
  begin(length: number): Uint8Array;
  /** Like `begin`: the frame's offset in `buffer` (valid until `commit`), without creating a view. */
  beginAt(length: number): number;
  /** The current output chunk, for `beginAt`. */
  readonly buffer: Uint8Array;
  /** Commits the frame written into the last `begin` space, stamped `timestampNs + offsetNs`. */
  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void;
  /** Full chunks produced so far (each returned once). */
  drain(): Uint8Array[];
  /** Everything produced so far, the partial chunk included. */
  flush(): Uint8Array[];
  /**
   * Hands back a chunk returned by `drain`/`flush` once its bytes have been written out, so its buffer is
   * reused instead of allocated anew (optional: chunks never recycled are simply garbage collected).
   */
  recycle(chunk: Uint8Array): void;
  readonly packetsWritten: number;
  readonly bytesWritten: number;
}

export interface PcapngEncoder extends CaptureEncoder {
  /** Writes a Decryption Secrets Block of TLS key log text, before the packets it decrypts. */
  writeTlsKeyLog(text: string): void;
}

export interface CaptureEncoderOptions {
  /** LINKTYPE_* of every frame. */
  readonly linkType: number;
  /** Default `DEFAULT_SNAP_LENGTH`; `begin` rejects longer frames. */
  readonly snapLength?: number;
  /** Default 1 MiB. */
  readonly chunkBytes?: number;
  /**
   * Default true. False: no file header (pcap global header; pcapng section header and interface block),
   * only packet records and secrets blocks, for output that goes after another encoder's header (the
   * stitch workers' shards, merged into one file by `mergeCaptureRecords`).
   */
  readonly fileHeader?: boolean;
}

export interface PcapEncoderOptions extends CaptureEncoderOptions {
  /** Default "microsecond". */
  readonly resolution?: "microsecond" | "nanosecond";
}

export interface PcapngEncoderOptions extends CaptureEncoderOptions {
  readonly userApplication?: string;
  readonly interfaceName?: string;
}

const DEFAULT_CHUNK = 1024 * 1024;
const encoder = new TextEncoder();
const pad4 = (n: number): number => (n + 3) & ~3;

abstract class ChunkedEncoder implements CaptureEncoder {
  protected chunk: Uint8Array;
  protected view: DataView;
  protected used = 0;
  /** Where the record being built starts, and the length `begin` was asked for. */
  protected recordAt = -1;
  protected frameLength = 0;
  private readonly ready: Uint8Array[] = [];
  private readonly chunkBytes: number;
  protected readonly snapLength: number;
  packetsWritten = 0;
  private flushedBytes = 0;

  constructor(options: CaptureEncoderOptions) {
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK;
    this.snapLength = options.snapLength ?? DEFAULT_SNAP_LENGTH;
    this.chunk = new Uint8Array(this.chunkBytes);
    this.view = new DataView(this.chunk.buffer);
  }

  get bytesWritten(): number {
    return this.flushedBytes + this.used;
  }

  private readonly spare: ArrayBuffer[] = [];

  recycle(chunk: Uint8Array): void {
    // Only whole standard-size buffers are kept, and at most 32: enough for the writes in flight (the file
    // output keeps up to 16 MiB in flight; a chunk not reused is a fresh 1 MiB of external memory, and V8
    // collects those only by full collections).
    const buffer = chunk.buffer;
    if (buffer instanceof ArrayBuffer && buffer.byteLength === this.chunkBytes && this.spare.length < 32) {
      if (!this.spare.includes(buffer) && buffer !== this.chunk.buffer) this.spare.push(buffer);
    }
  }

  /** A fresh chunk: a recycled buffer when one is there (every byte of it is written before it is read). */
  private newChunk(n: number): void {
    const spare = n <= this.chunkBytes ? this.spare.pop() : undefined;
    this.chunk = spare ? new Uint8Array(spare) : new Uint8Array(Math.max(this.chunkBytes, n));
    this.view = new DataView(this.chunk.buffer);
    this.used = 0;
  }

  /** Makes room for `n` more bytes in the current chunk. */
  protected room(n: number): void {
    if (this.used + n <= this.chunk.length) return;
    if (this.used > 0) {
      this.ready.push(this.chunk.subarray(0, this.used));
      this.flushedBytes += this.used;
    }
    this.newChunk(n);
  }

  protected checkLength(length: number): void {
    if (length > this.snapLength) {
      throw new PcapWriteError(
        PcapWriteErrorCode.BadPacket,
        `frame of ${length} bytes exceeds the snap length ${this.snapLength}`,
      );
    }
  }

  get buffer(): Uint8Array {
    return this.chunk;
  }

  abstract beginAt(length: number): number;

  begin(length: number): Uint8Array {
    const at = this.beginAt(length);
    return this.chunk.subarray(at, at + length);
  }
  abstract commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void;

  // The last base timestamp split into two 32-bit halves (pcapng) or seconds and nanoseconds (pcap), so that
  // packets sharing a base cost no BigInt arithmetic.
  private lastBase = -1n;
  private baseHigh = 0;
  private baseLow = 0;

  /** Output of `split`: fields, not an array, to allocate nothing per packet. */
  protected high = 0;
  protected low = 0;

  // The last window of `unit` that `baseLow + offsetNs` fell in: [windowStart, windowStart + unit) has the
  // high half windowHigh. Frames come in time order with offsets from one base (a time-order stage stamps
  // every frame as its base plus an offset of up to days), so most frames fall in the window of the last
  // one: two comparisons instead of a division.
  private windowStart = 0;
  private windowEnd = -1;
  private windowHigh = 0;

  /** Sets `high`/`low` to `timestampNs + offsetNs` split at `unit` (2^32 for pcapng, 10^9 for pcap). */
  protected split(timestampNs: bigint, offsetNs: number, unit: bigint): void {
    if (timestampNs !== this.lastBase) {
      this.lastBase = timestampNs;
      this.baseHigh = Number(timestampNs / unit);
      this.baseLow = Number(timestampNs % unit);
      this.windowEnd = -1;
    }
    const low = this.baseLow + offsetNs;
    if (low >= this.windowStart && low < this.windowEnd) {
      this.high = this.windowHigh;
      this.low = low - this.windowStart;
      return;
    }
    const u = Number(unit);
    const carry = low >= u ? Math.floor(low / u) : 0;
    this.windowStart = carry * u;
    this.windowEnd = this.windowStart + u;
    this.windowHigh = this.baseHigh + carry;
    this.high = this.windowHigh;
    this.low = low - this.windowStart;
  }

  drain(): Uint8Array[] {
    return this.ready.splice(0, this.ready.length);
  }

  flush(): Uint8Array[] {
    if (this.used > 0) {
      this.ready.push(this.chunk.subarray(0, this.used));
      this.flushedBytes += this.used;
      this.newChunk(0);
    }
    return this.drain();
  }
}

class PcapngChunkEncoder extends ChunkedEncoder implements PcapngEncoder {
  constructor(options: PcapngEncoderOptions) {
    super(options);
    if (options.fileHeader === false) return;
    const shbOptions: [number, Uint8Array][] = [];
    if (options.userApplication)
      shbOptions.push([PcapngOption.ShbUserAppl, encoder.encode(options.userApplication)]);
    this.block(PcapngBlockType.SectionHeader, 16, shbOptions, (v, at) => {
      v.setUint32(at, PCAPNG_BYTE_ORDER_MAGIC, true);
      v.setUint16(at + 4, 1, true);
      v.setUint16(at + 6, 0, true);
      v.setBigInt64(at + 8, -1n, true);
    });
    const idbOptions: [number, Uint8Array][] = [[PcapngOption.IfTsResol, Uint8Array.of(9)]];
    if (options.interfaceName) idbOptions.push([PcapngOption.IfName, encoder.encode(options.interfaceName)]);
    this.block(PcapngBlockType.InterfaceDescription, 8, idbOptions, (v, at) => {
      v.setUint16(at, options.linkType, true);
      v.setUint16(at + 2, 0, true);
      v.setUint32(at + 4, this.snapLength, true);
    });
  }

  /** A non-packet block: fixed body, then options. */
  private block(
    type: number,
    fixed: number,
    options: [number, Uint8Array][],
    fill: (v: DataView, at: number) => void,
    data?: Uint8Array,
  ): void {
    const dataLength = data ? pad4(data.length) : 0;
    const optLength = options.length ? options.reduce((n, [, v]) => n + 4 + pad4(v.length), 0) + 4 : 0;
    const length = 12 + fixed + dataLength + optLength;
    this.room(length);
    const at = this.used;
    this.chunk.fill(0, at, at + length);
    const v = this.view;
    v.setUint32(at, type, true);
    v.setUint32(at + 4, length, true);
    fill(v, at + 8);
    if (data) this.chunk.set(data, at + 8 + fixed);
    let p = at + 8 + fixed + dataLength;
    for (const [code, value] of options) {
      v.setUint16(p, code, true);
      v.setUint16(p + 2, value.length, true);
      this.chunk.set(value, p + 4);
      p += 4 + pad4(value.length);
    }
    v.setUint32(at + length - 4, length, true);
    this.used += length;
  }

  writeTlsKeyLog(text: string): void {
    if (this.recordAt >= 0)
      throw new PcapWriteError(PcapWriteErrorCode.BadPacket, "secrets written inside a frame");
    const data = encoder.encode(text);
    this.block(
      PcapngBlockType.DecryptionSecrets,
      8,
      [],
      (v, at) => {
        v.setUint32(at, SecretsType.TlsKeyLog, true);
        v.setUint32(at + 4, data.length, true);
      },
      data,
    );
  }

  beginAt(length: number): number {
    this.checkLength(length);
    const total = 32 + pad4(length);
    this.room(total);
    this.recordAt = this.used;
    this.frameLength = length;
    return this.used + 28;
  }

  commit(timestampNs: bigint, offsetNs = 0, originalLength?: number): void {
    const at = this.recordAt;
    if (at < 0) throw new PcapWriteError(PcapWriteErrorCode.BadPacket, "commit without begin");
    const length = this.frameLength;
    this.split(timestampNs, offsetNs, 0x1_0000_0000n);
    const padded = pad4(length);
    const total = 32 + padded;
    const v = this.view;
    v.setUint32(at, PcapngBlockType.EnhancedPacket, true);
    v.setUint32(at + 4, total, true);
    v.setUint32(at + 8, 0, true);
    v.setUint32(at + 12, this.high, true);
    v.setUint32(at + 16, this.low, true);
    v.setUint32(at + 20, length, true);
    v.setUint32(at + 24, Math.max(length, originalLength ?? length), true);
    for (let i = at + 28 + length; i < at + 28 + padded; i++) this.chunk[i] = 0;
    v.setUint32(at + 28 + padded, total, true);
    this.used += total;
    this.recordAt = -1;
    this.packetsWritten++;
  }
}

class PcapChunkEncoder extends ChunkedEncoder {
  private readonly nano: boolean;
  constructor(options: PcapEncoderOptions) {
    super(options);
    this.nano = options.resolution === "nanosecond";
    if (options.fileHeader === false) return;
    this.room(24);
    const v = this.view;
    v.setUint32(0, this.nano ? PcapMagic.Nanoseconds : PcapMagic.Microseconds, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setUint32(8, 0, true);
    v.setUint32(12, 0, true);
    v.setUint32(16, this.snapLength, true);
    v.setUint32(20, options.linkType, true);
    this.used = 24;
  }

  beginAt(length: number): number {
    this.checkLength(length);
    this.room(16 + length);
    this.recordAt = this.used;
    this.frameLength = length;
    return this.used + 16;
  }

  commit(timestampNs: bigint, offsetNs = 0, originalLength?: number): void {
    const at = this.recordAt;
    if (at < 0) throw new PcapWriteError(PcapWriteErrorCode.BadPacket, "commit without begin");
    const v = this.view;
    this.split(timestampNs, offsetNs, 1_000_000_000n);
    const fraction = this.low;
    v.setUint32(at, this.high, true);
    v.setUint32(at + 4, this.nano ? fraction : Math.floor(fraction / 1000), true);
    v.setUint32(at + 8, this.frameLength, true);
    v.setUint32(at + 12, Math.max(this.frameLength, originalLength ?? this.frameLength), true);
    this.used += 16 + this.frameLength;
    this.recordAt = -1;
    this.packetsWritten++;
  }
}

export function createPcapngEncoder(options: PcapngEncoderOptions): PcapngEncoder {
  return new PcapngChunkEncoder(options);
}

export function createPcapEncoder(options: PcapEncoderOptions): CaptureEncoder {
  return new PcapChunkEncoder(options);
}
