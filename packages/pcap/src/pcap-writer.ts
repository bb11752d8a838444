import { BufferedSink } from "./buffered-sink.js";
import type { ByteSink } from "./byte-sink.js";
import { PcapWriteError, PcapWriteErrorCode } from "./errors.js";
import { PCAP_FILE_HEADER_BYTES, PCAP_RECORD_HEADER_BYTES, PcapMagic } from "./pcap-reader.js";

/** 262144: the snap length tcpdump and Wireshark use by default. */
export const DEFAULT_SNAP_LENGTH = 262_144;
/** Writes are gathered into chunks of this size before they reach the sink. */
export const DEFAULT_WRITE_CHUNK_BYTES = 64 * 1024;

export interface PcapWriterOptions {
  /** LINKTYPE_* of every packet in the file. */
  readonly linkType: number;
  /** Default `DEFAULT_SNAP_LENGTH`. */
  readonly snapLength?: number;
  /** Timestamp resolution; default "microsecond" (the magic every tool reads). */
  readonly resolution?: "microsecond" | "nanosecond";
  /** Default true (little-endian, as written by x86 and ARM hosts). */
  readonly littleEndian?: boolean;
  /** Default `DEFAULT_WRITE_CHUNK_BYTES`. */
  readonly chunkBytes?: number;
}

/** A packet to write. `capturedLength` defaults to `data.length`, `originalLength` to `capturedLength`. */
export interface PacketToWrite {
  readonly timestampNs: bigint;
  readonly data: Uint8Array;
  readonly capturedLength?: number;
  readonly originalLength?: number;
}

export interface PcapWriter {
  /** Writes the file header (on the first call) and one record. */
  writePacket(packet: PacketToWrite): Promise<void>;
  /** Passes everything buffered to the sink (writing the file header if no packet was written). */
  flush(): Promise<void>;
  readonly packetsWritten: number;
  readonly bytesWritten: number;
}

/** Checks the lengths of a packet; shared with the pcapng writer. */
export function checkPacketLengths(packet: PacketToWrite): { captured: number; original: number } {
  const captured = packet.capturedLength ?? packet.data.length;
  const original = packet.originalLength ?? captured;
  if (captured !== packet.data.length) {
    throw new PcapWriteError(
      PcapWriteErrorCode.BadPacket,
      `captured length ${captured} does not match the ${packet.data.length} data bytes`,
    );
  }
  if (captured > original) {
    throw new PcapWriteError(
      PcapWriteErrorCode.BadPacket,
      `captured length ${captured} exceeds original length ${original}`,
    );
  }
  if (original > 0xffff_ffff) {
    throw new PcapWriteError(PcapWriteErrorCode.BadPacket, `original length ${original} exceeds 32 bits`);
  }
  return { captured, original };
}

/** A classic pcap writer over a sink. Create with `createPcapWriter`. */
class SinkPcapWriter implements PcapWriter {
  readonly #out: BufferedSink;
  readonly #linkType: number;
  readonly #snapLength: number;
  readonly #nanosecond: boolean;
  readonly #le: boolean;
  #headerWritten = false;
  packetsWritten = 0;

  constructor(sink: ByteSink, options: PcapWriterOptions) {
    this.#out = new BufferedSink(sink, options.chunkBytes ?? DEFAULT_WRITE_CHUNK_BYTES);
    this.#linkType = options.linkType;
    this.#snapLength = options.snapLength ?? DEFAULT_SNAP_LENGTH;
    this.#nanosecond = options.resolution === "nanosecond";
    this.#le = options.littleEndian ?? true;
  }

  get bytesWritten(): number {
    return this.#out.bytesWritten;
  }

  async #writeHeader(): Promise<void> {
    this.#headerWritten = true;
    const h = await this.#out.reserve(PCAP_FILE_HEADER_BYTES);
    const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
    view.setUint32(0, this.#nanosecond ? PcapMagic.Nanoseconds : PcapMagic.Microseconds, this.#le);
    view.setUint16(4, 2, this.#le);
    view.setUint16(6, 4, this.#le);
    view.setUint32(8, 0, this.#le);
    view.setUint32(12, 0, this.#le);
    view.setUint32(16, this.#snapLength, this.#le);
    view.setUint32(20, this.#linkType, this.#le);
  }

  async writePacket(packet: PacketToWrite): Promise<void> {
    const { captured, original } = checkPacketLengths(packet);
    if (packet.timestampNs < 0n) {
      throw new PcapWriteError(PcapWriteErrorCode.BadTimestamp, `negative timestamp ${packet.timestampNs}`);
    }
    const seconds = packet.timestampNs / 1_000_000_000n;
    if (seconds > 0xffff_ffffn) {
      throw new PcapWriteError(
        PcapWriteErrorCode.BadTimestamp,
        `timestamp ${packet.timestampNs} ns is past 2106`,
      );
    }
    const remainder = packet.timestampNs % 1_000_000_000n;
    const fraction = this.#nanosecond ? remainder : remainder / 1000n;
    if (!this.#headerWritten) await this.#writeHeader();
    const h = await this.#out.reserve(PCAP_RECORD_HEADER_BYTES);
    const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
    view.setUint32(0, Number(seconds), this.#le);
    view.setUint32(4, Number(fraction), this.#le);
    view.setUint32(8, captured, this.#le);
    view.setUint32(12, original, this.#le);
    await this.#out.write(packet.data);
    this.packetsWritten++;
  }

  async flush(): Promise<void> {
    if (!this.#headerWritten) await this.#writeHeader();
    await this.#out.flush();
  }
}

export function createPcapWriter(sink: ByteSink, options: PcapWriterOptions): PcapWriter {
  return new SinkPcapWriter(sink, options);
}
