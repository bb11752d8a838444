import type { CapturePacket } from "./capture-item.js";
import type { ChunkReader } from "./chunk-reader.js";
import { PcapErrorCode, PcapFormatError } from "./errors.js";

/** Magic numbers of the classic pcap file header, as read in the file's own byte order. */
export const PcapMagic = {
  Microseconds: 0xa1b2c3d4,
  Nanoseconds: 0xa1b23c4d,
  /** Alexey Kuznetsov's "modified pcap" (extra per-record fields); recognised, not read. */
  Modified: 0xa1b2cd34,
} as const;

export const PCAP_FILE_HEADER_BYTES = 24;
export const PCAP_RECORD_HEADER_BYTES = 16;

export interface PcapFileHeader {
  readonly littleEndian: boolean;
  readonly nanosecond: boolean;
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly snapLength: number;
  /** The LINKTYPE_* (the low 28 bits of the field; the top bits carry FCS information). */
  readonly linkType: number;
  /** Length in bytes of the FCS at the end of each packet when the file says so, else undefined. */
  readonly fcsLength: number | undefined;
}

/** Decodes the 24-byte file header; the magic has been recognised by the caller. */
export function parsePcapFileHeader(bytes: Uint8Array): PcapFileHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const littleEndian =
    view.getUint32(0, true) === PcapMagic.Microseconds || view.getUint32(0, true) === PcapMagic.Nanoseconds;
  const magic = view.getUint32(0, littleEndian);
  const versionMajor = view.getUint16(4, littleEndian);
  const versionMinor = view.getUint16(6, littleEndian);
  if (versionMajor !== 2) {
    throw new PcapFormatError(
      PcapErrorCode.BadVersion,
      `unsupported pcap version ${versionMajor}.${versionMinor}`,
      4,
    );
  }
  const linkField = view.getUint32(20, littleEndian);
  const fcsPresent = (linkField & 0x1000_0000) !== 0;
  return {
    littleEndian,
    nanosecond: magic === PcapMagic.Nanoseconds,
    versionMajor,
    versionMinor,
    snapLength: view.getUint32(16, littleEndian),
    linkType: linkField & 0x0fff_ffff,
    fcsLength: fcsPresent ? ((linkField >>> 29) & 0x7) * 2 : undefined,
  };
}

/** Reads the records of a classic pcap file whose 24-byte header has been consumed. */
export async function* readPcapRecords(
  reader: ChunkReader,
  header: PcapFileHeader,
  maxBlockBytes: number,
): AsyncGenerator<CapturePacket> {
  const le = header.littleEndian;
  const fractionToNs = header.nanosecond ? 1n : 1000n;
  while (true) {
    const offset = reader.offset;
    const have = await reader.ensure(PCAP_RECORD_HEADER_BYTES);
    if (have === 0) return;
    if (have < PCAP_RECORD_HEADER_BYTES) {
      throw new PcapFormatError(
        PcapErrorCode.Truncated,
        `truncated record header: ${have} of ${PCAP_RECORD_HEADER_BYTES} bytes`,
        offset,
      );
    }
    const h = reader.take(PCAP_RECORD_HEADER_BYTES);
    const view = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const seconds = view.getUint32(0, le);
    const fraction = view.getUint32(4, le);
    const capturedLength = view.getUint32(8, le);
    const originalLength = view.getUint32(12, le);
    if (capturedLength > maxBlockBytes) {
      throw new PcapFormatError(
        PcapErrorCode.BlockTooLarge,
        `record captured length ${capturedLength} exceeds the ${maxBlockBytes}-byte cap`,
        offset,
      );
    }
    const got = await reader.ensure(capturedLength);
    if (got < capturedLength) {
      throw new PcapFormatError(
        PcapErrorCode.Truncated,
        `truncated record: ${got} of ${capturedLength} captured bytes`,
        offset,
      );
    }
    yield {
      type: "packet",
      linkType: header.linkType,
      timestampNs: BigInt(seconds) * 1_000_000_000n + BigInt(fraction) * fractionToNs,
      capturedLength,
      originalLength,
      data: reader.take(capturedLength),
      interfaceId: 0,
      offset,
    };
  }
}
