/**
 * The streaming CTAP writer. It writes the header once, then one frame per record, then the blob-end frame on
 * `finish()`. Payloads are passed to the sink as they are (no copy); each frame's fixed part is encoded into a
 * fresh slice of a slab, so a sink may keep the chunks it is given.
 */
import { CompressionStream } from "node:stream/web";
import { crc32 } from "./crc32.js";
import {
  FRAME_SYNC,
  Frame,
  Header,
  MAGIC,
  MAX_FRAME_BODY_BYTES,
  VERSION_MAJOR,
  VERSION_MINOR,
} from "./layout.js";
import {
  connOpenBodySize,
  encodeBlobEnd,
  encodeConnClose,
  encodeConnOpen,
  encodeDatagramHead,
  encodeDataHead,
} from "./record-codec.js";
import { Compression, FrameType, type TapRecord } from "./records.js";
import { isTapperId, TAPPER_ID_RULE } from "./tapper-id.js";

/** Where encoded bytes go. A returned promise is awaited before the next write (backpressure). */
export interface ByteSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

export interface CtapWriterOptions {
  /** Names the tapper instance: see `isTapperId`. */
  readonly tapperId: string;
  /** Blob sequence number of this tapper. */
  readonly sequence: bigint;
  /** Time of the blob's first record (Unix ns). */
  readonly startNs: bigint;
  /** Compresses everything after the header. Default "none". */
  readonly compression?: "none" | "gzip";
}

export interface CtapWriter {
  write(record: TapRecord): Promise<void>;
  /** Writes the blob-end frame and flushes the compressor. The writer cannot be used afterwards. */
  finish(endNs: bigint): Promise<void>;
  /** Bytes handed to the sink so far (compressed size when compressing). */
  readonly bytesWritten: number;
  /** Frame-stream bytes so far (before compression): the size the blob would have uncompressed. */
  readonly frameBytes: number;
  /** Payload bytes of data and datagram records so far. */
  readonly payloadBytes: number;
  readonly frameCount: number;
}

export class CtapWriterStateError extends Error {
  override readonly name = "CtapWriterStateError";
}

const SLAB_BYTES = 64 * 1024;
const encoder = new TextEncoder();

export function encodeHeader(options: CtapWriterOptions): Uint8Array {
  const id = encoder.encode(options.tapperId);
  if (id.length < 1 || id.length > Header.maxTapperIdBytes || !isTapperId(options.tapperId)) {
    throw new RangeError(`tapper id "${options.tapperId}" must be ${TAPPER_ID_RULE}`);
  }
  const size = Header.fixedBytes + id.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, Header.magic);
  dv.setUint16(Header.versionMajor, VERSION_MAJOR, true);
  dv.setUint16(Header.versionMinor, VERSION_MINOR, true);
  dv.setUint32(Header.headerLength, size, true);
  dv.setUint32(Header.flags, options.compression === "gzip" ? Compression.Gzip : Compression.None, true);
  dv.setBigUint64(Header.sequence, options.sequence, true);
  dv.setBigUint64(Header.startNs, options.startNs, true);
  dv.setUint16(Header.tapperIdLength, id.length, true);
  out.set(id, Header.tapperId);
  dv.setUint32(size - 4, crc32(out.subarray(0, size - 4)), true);
  return out;
}

export function createCtapWriter(sink: ByteSink, options: CtapWriterOptions): CtapWriter {
  return new StreamingCtapWriter(sink, options);
}

class StreamingCtapWriter implements CtapWriter {
  bytesWritten = 0;
  frameBytes = 0;
  payloadBytes = 0;
  frameCount = 0;
  private slab = new Uint8Array(SLAB_BYTES);
  private slabUsed = 0;
  private headerWritten = false;
  private finished = false;
  private readonly out: ByteSink;
  private compressor: { writer: WritableStreamDefaultWriter<Uint8Array>; pump: Promise<void> } | undefined;

  constructor(
    private readonly sink: ByteSink,
    private readonly options: CtapWriterOptions,
  ) {
    this.out = { write: (c) => this.writeFrameBytes(c) };
  }

  private async writeRaw(chunk: Uint8Array): Promise<void> {
    this.bytesWritten += chunk.length;
    await this.sink.write(chunk);
  }

  private async writeFrameBytes(chunk: Uint8Array): Promise<void> {
    this.frameBytes += chunk.length;
    if (this.compressor) await this.compressor.writer.write(chunk);
    else await this.writeRaw(chunk);
  }

  private async start(): Promise<void> {
    this.headerWritten = true;
    await this.writeRaw(encodeHeader(this.options));
    if (this.options.compression === "gzip") {
      const cs = new CompressionStream("gzip");
      const writer = cs.writable.getWriter();
      const pump = (async () => {
        for await (const c of cs.readable) await this.writeRaw(c);
      })();
      // The pump's failure surfaces through writer.write / close; keep it from being reported as unhandled.
      pump.catch(() => {});
      this.compressor = { writer, pump };
    }
  }

  private take(n: number): Uint8Array {
    if (n > SLAB_BYTES) return new Uint8Array(n);
    if (this.slabUsed + n > SLAB_BYTES) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.slabUsed = 0;
    }
    const b = this.slab.subarray(this.slabUsed, this.slabUsed + n);
    this.slabUsed += n;
    return b;
  }

  /** Writes one frame whose body is `fixed` (already encoded after the frame header in `buf`) + `payload`. */
  private async frame(type: number, buf: Uint8Array, payload: Uint8Array | undefined): Promise<void> {
    const fixed = buf.subarray(Frame.headerBytes);
    const bodyLength = fixed.length + (payload?.length ?? 0);
    if (bodyLength > MAX_FRAME_BODY_BYTES) {
      throw new RangeError(
        `record body of ${bodyLength} bytes exceeds the CTAP frame limit ${MAX_FRAME_BODY_BYTES}`,
      );
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, Frame.headerBytes);
    dv.setUint16(Frame.sync, FRAME_SYNC, true);
    dv.setUint16(Frame.type, type, true);
    dv.setUint32(Frame.bodyLength, bodyLength, true);
    let crc = crc32(fixed);
    if (payload) crc = crc32(payload, crc);
    dv.setUint32(Frame.bodyCrc, crc, true);
    dv.setUint32(Frame.headerCrc, crc32(buf.subarray(0, Frame.headerCrc)), true);
    this.frameCount++;
    await this.out.write(buf);
    if (payload && payload.length > 0) await this.out.write(payload);
  }

  async write(record: TapRecord): Promise<void> {
    if (this.finished) throw new CtapWriterStateError("write after finish");
    if (!this.headerWritten) await this.start();
    switch (record.type) {
      case "conn-open": {
        const buf = this.take(Frame.headerBytes + connOpenBodySize(record));
        encodeConnOpen(record, buf.subarray(Frame.headerBytes));
        return this.frame(FrameType.ConnOpen, buf, undefined);
      }
      case "data": {
        const buf = this.take(Frame.headerBytes + 40);
        encodeDataHead(record, buf.subarray(Frame.headerBytes));
        this.payloadBytes += record.payload.length;
        return this.frame(FrameType.Data, buf, record.payload);
      }
      case "datagram": {
        const buf = this.take(Frame.headerBytes + 40);
        encodeDatagramHead(record, buf.subarray(Frame.headerBytes));
        this.payloadBytes += record.payload.length;
        return this.frame(FrameType.Datagram, buf, record.payload);
      }
      case "conn-close": {
        const buf = this.take(Frame.headerBytes + 48);
        encodeConnClose(record, buf.subarray(Frame.headerBytes));
        return this.frame(FrameType.ConnClose, buf, undefined);
      }
    }
  }

  async finish(endNs: bigint): Promise<void> {
    if (this.finished) throw new CtapWriterStateError("finish called twice");
    if (!this.headerWritten) await this.start();
    const buf = this.take(Frame.headerBytes + 24);
    encodeBlobEnd(endNs, this.frameCount, this.payloadBytes, buf.subarray(Frame.headerBytes));
    await this.frame(FrameType.BlobEnd, buf, undefined);
    this.finished = true;
    if (this.compressor) {
      await this.compressor.writer.close();
      await this.compressor.pump;
    }
  }
}

/** Collects a whole blob in memory: `createCtapWriter(sink, ...)`, then `sink.bytes()`. */
export class MemorySink implements ByteSink {
  private chunks: Uint8Array[] = [];
  private length = 0;
  write(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
  get size(): number {
    return this.length;
  }
  /** The chunks written so far, without joining them. */
  parts(): readonly Uint8Array[] {
    return this.chunks;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let p = 0;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}
