import { type CaptureItem, type CaptureReaderOptions, DEFAULT_MAX_BLOCK_BYTES } from "./capture-item.js";
import { ChunkReader, singleChunk } from "./chunk-reader.js";
import { PcapErrorCode, PcapFormatError } from "./errors.js";
import { PCAP_FILE_HEADER_BYTES, PcapMagic, parsePcapFileHeader, readPcapRecords } from "./pcap-reader.js";
import { PcapngBlockType, readPcapngBlocks } from "./pcapng-reader.js";

export type CaptureFormat = "pcap" | "pcapng";

/**
 * Tells the format from the first 4 bytes of a file: "pcap" (either byte order, micro- or nanosecond),
 * "pcapng", or undefined.
 */
export function detectCaptureFormat(head: Uint8Array): CaptureFormat | undefined {
  if (head.length < 4) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, 4);
  const le = view.getUint32(0, true);
  const be = view.getUint32(0, false);
  if (be === PcapngBlockType.SectionHeader) return "pcapng";
  for (const magic of [PcapMagic.Microseconds, PcapMagic.Nanoseconds]) {
    if (le === magic || be === magic) return "pcap";
  }
  return undefined;
}

/**
 * Reads a pcap or pcapng capture, telling them apart by the magic number, and yields its packets and
 * decryption secrets in file order. Throws `PcapFormatError` (with the byte offset) at the first thing it
 * cannot read; items yielded before that are valid.
 *
 * Yielded byte arrays are views into the input chunks (or copies when a block spans chunks): copy what you
 * keep beyond the current iteration step if the source reuses its buffers.
 */
export async function* readCapture(
  input: AsyncIterable<Uint8Array> | Uint8Array,
  options: CaptureReaderOptions = {},
): AsyncGenerator<CaptureItem> {
  const maxBlockBytes = options.maxBlockBytes ?? DEFAULT_MAX_BLOCK_BYTES;
  const reader = new ChunkReader(input instanceof Uint8Array ? singleChunk(input) : input);
  try {
    const have = await reader.ensure(4);
    if (have === 0) throw new PcapFormatError(PcapErrorCode.Truncated, "empty capture file", 0);
    const head = reader.peek(have);
    const format = detectCaptureFormat(head);
    if (format === "pcapng") {
      yield* readPcapngBlocks(reader, maxBlockBytes);
      return;
    }
    if (format === "pcap") {
      const got = await reader.ensure(PCAP_FILE_HEADER_BYTES);
      if (got < PCAP_FILE_HEADER_BYTES) {
        throw new PcapFormatError(
          PcapErrorCode.Truncated,
          `truncated pcap file header: ${got} of ${PCAP_FILE_HEADER_BYTES} bytes`,
          0,
        );
      }
      const header = parsePcapFileHeader(reader.take(PCAP_FILE_HEADER_BYTES));
      yield* readPcapRecords(reader, header, maxBlockBytes);
      return;
    }
    throw unknownFormat(head);
  } finally {
    await reader.close();
  }
}

function unknownFormat(head: Uint8Array): PcapFormatError {
  const hex = Array.from(head, (b) => b.toString(16).padStart(2, "0")).join(" ");
  if (head[0] === 0x1f && head[1] === 0x8b) {
    return new PcapFormatError(
      PcapErrorCode.UnsupportedFormat,
      "gzip-compressed capture: decompress it first",
      0,
    );
  }
  if (head.length === 4) {
    const view = new DataView(head.buffer, head.byteOffset, 4);
    if (view.getUint32(0, true) === PcapMagic.Modified || view.getUint32(0, false) === PcapMagic.Modified) {
      return new PcapFormatError(
        PcapErrorCode.UnsupportedFormat,
        "modified (Kuznetsov) pcap is not supported",
        0,
      );
    }
    return new PcapFormatError(PcapErrorCode.BadMagic, `not a pcap or pcapng file: magic ${hex}`, 0);
  }
  return new PcapFormatError(
    PcapErrorCode.Truncated,
    `file of ${head.length} bytes is too short for a magic number`,
    0,
  );
}
