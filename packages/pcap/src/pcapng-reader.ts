import { type CaptureItem, SecretsType } from "./capture-item.js";
import type { ChunkReader } from "./chunk-reader.js";
import { PcapErrorCode, PcapFormatError } from "./errors.js";

/** pcapng block types this reader interprets; any other block is skipped whole. */
export const PcapngBlockType = {
  InterfaceDescription: 0x0000_0001,
  /** The obsolete Packet Block. */
  Packet: 0x0000_0002,
  SimplePacket: 0x0000_0003,
  NameResolution: 0x0000_0004,
  InterfaceStatistics: 0x0000_0005,
  EnhancedPacket: 0x0000_0006,
  DecryptionSecrets: 0x0000_000a,
  SectionHeader: 0x0a0d_0d0a,
} as const;

export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b_3c4d;

/** Option codes used by this package. */
export const PcapngOption = {
  EndOfOptions: 0,
  Comment: 1,
  IfName: 2,
  IfTsResol: 9,
  IfFcsLen: 13,
  IfTsOffset: 14,
  ShbUserAppl: 4,
} as const;

/** The smallest blocks: 12 bytes of framing, and the SHB's 16 fixed body bytes. */
const MIN_BLOCK = 12;
const MIN_SECTION_HEADER = 28;

interface InterfaceState {
  readonly linkType: number;
  readonly snapLength: number;
  /** Converts a timestamp in the interface's units to Unix nanoseconds. */
  readonly toNs: (ticks: bigint) => bigint;
}

/** Builds the tick-to-ns conversion for an if_tsresol value (default 6: microseconds) and if_tsoffset. */
export function timestampConverter(tsresol: number, offsetSeconds: bigint): (ticks: bigint) => bigint {
  const offsetNs = offsetSeconds * 1_000_000_000n;
  const exponent = BigInt(tsresol & 0x7f);
  if ((tsresol & 0x80) !== 0) {
    // Binary: a tick is 2^-exponent seconds.
    return (ticks) => ((ticks * 1_000_000_000n) >> exponent) + offsetNs;
  }
  if (exponent <= 9n) {
    const scale = 10n ** (9n - exponent);
    return (ticks) => ticks * scale + offsetNs;
  }
  const divisor = 10n ** (exponent - 9n);
  return (ticks) => ticks / divisor + offsetNs;
}

/**
 * Reads the blocks of a pcapng file from its first byte (which the caller has recognised as a Section
 * Header Block). Handles several sections, each with its own byte order and interfaces.
 */
export async function* readPcapngBlocks(
  reader: ChunkReader,
  maxBlockBytes: number,
): AsyncGenerator<CaptureItem> {
  let littleEndian = true;
  let inSection = false;
  let interfaces: InterfaceState[] = [];
  let lastTimestampNs = 0n;
  const decoder = new TextDecoder();

  while (true) {
    const offset = reader.offset;
    const have = await reader.ensure(MIN_BLOCK);
    if (have === 0) return;
    if (have < 8) {
      throw new PcapFormatError(
        PcapErrorCode.Truncated,
        `truncated block header: ${have} of 8 bytes`,
        offset,
      );
    }
    const head = reader.peek(have);
    const headView = new DataView(head.buffer, head.byteOffset, head.byteLength);
    // The SHB type reads the same in both byte orders; its byte-order magic tells the section's order.
    const type0 = headView.getUint32(0, littleEndian);
    if (type0 === PcapngBlockType.SectionHeader) {
      if (have < MIN_BLOCK) {
        throw new PcapFormatError(PcapErrorCode.Truncated, "truncated section header block", offset);
      }
      const magicLe = headView.getUint32(8, true);
      if (magicLe === PCAPNG_BYTE_ORDER_MAGIC) littleEndian = true;
      else if (headView.getUint32(8, false) === PCAPNG_BYTE_ORDER_MAGIC) littleEndian = false;
      else {
        throw new PcapFormatError(
          PcapErrorCode.BadMagic,
          `bad byte-order magic 0x${magicLe.toString(16).padStart(8, "0")}`,
          offset + 8,
        );
      }
    } else if (!inSection) {
      throw new PcapFormatError(
        PcapErrorCode.NoSectionHeader,
        `block type 0x${type0.toString(16)} before any section header block`,
        offset,
      );
    }
    const type = headView.getUint32(0, littleEndian);
    const length = headView.getUint32(4, littleEndian);
    const minimum = type === PcapngBlockType.SectionHeader ? MIN_SECTION_HEADER : MIN_BLOCK;
    if (length < minimum || length % 4 !== 0) {
      throw new PcapFormatError(PcapErrorCode.BadBlockLength, `bad block length ${length}`, offset);
    }
    if (length > maxBlockBytes) {
      throw new PcapFormatError(
        PcapErrorCode.BlockTooLarge,
        `block length ${length} exceeds the ${maxBlockBytes}-byte cap`,
        offset,
      );
    }
    const got = await reader.ensure(length);
    if (got < length) {
      throw new PcapFormatError(
        PcapErrorCode.Truncated,
        `truncated block: ${got} of ${length} bytes`,
        offset,
      );
    }
    const block = reader.take(length);
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    const trailing = view.getUint32(length - 4, littleEndian);
    if (trailing !== length) {
      throw new PcapFormatError(
        PcapErrorCode.BadBlockLength,
        `bad block length ${length}: trailing length is ${trailing}`,
        offset,
      );
    }
    const bodyEnd = length - 4;
    const need = (bytes: number, what: string): void => {
      if (8 + bytes > bodyEnd) {
        throw new PcapFormatError(
          PcapErrorCode.BadRecord,
          `${what} needs ${bytes} body bytes, block has ${bodyEnd - 8}`,
          offset,
        );
      }
    };
    const packetInterface = (id: number): InterfaceState => {
      const state = interfaces[id];
      if (state === undefined) {
        throw new PcapFormatError(
          PcapErrorCode.UnknownInterface,
          `packet on interface ${id}, but the section declares ${interfaces.length}`,
          offset + 8,
        );
      }
      return state;
    };

    switch (type) {
      case PcapngBlockType.SectionHeader: {
        const major = view.getUint16(12, littleEndian);
        const minor = view.getUint16(14, littleEndian);
        if (major !== 1) {
          throw new PcapFormatError(
            PcapErrorCode.BadVersion,
            `unsupported pcapng version ${major}.${minor}`,
            offset + 12,
          );
        }
        inSection = true;
        interfaces = [];
        lastTimestampNs = 0n;
        break;
      }
      case PcapngBlockType.InterfaceDescription: {
        need(8, "interface description block");
        let tsresol = 6;
        let tsoffset = 0n;
        for (const option of walkOptions(block, 16, bodyEnd, littleEndian, offset)) {
          if (option.code === PcapngOption.IfTsResol && option.value.length >= 1) tsresol = option.value[0]!;
          if (option.code === PcapngOption.IfTsOffset && option.value.length >= 8) {
            tsoffset = new DataView(option.value.buffer, option.value.byteOffset, 8).getBigInt64(
              0,
              littleEndian,
            );
          }
        }
        interfaces.push({
          linkType: view.getUint16(8, littleEndian),
          snapLength: view.getUint32(12, littleEndian),
          toNs: timestampConverter(tsresol, tsoffset),
        });
        break;
      }
      case PcapngBlockType.EnhancedPacket:
      case PcapngBlockType.Packet: {
        need(20, "packet block");
        const enhanced = type === PcapngBlockType.EnhancedPacket;
        const interfaceId = enhanced ? view.getUint32(8, littleEndian) : view.getUint16(8, littleEndian);
        const iface = packetInterface(interfaceId);
        const ticks =
          (BigInt(view.getUint32(12, littleEndian)) << 32n) | BigInt(view.getUint32(16, littleEndian));
        const capturedLength = view.getUint32(20, littleEndian);
        const originalLength = view.getUint32(24, littleEndian);
        if (28 + capturedLength > bodyEnd) {
          throw new PcapFormatError(
            PcapErrorCode.BadRecord,
            `captured length ${capturedLength} exceeds the ${bodyEnd - 28} bytes the block holds`,
            offset + 20,
          );
        }
        lastTimestampNs = iface.toNs(ticks);
        yield {
          type: "packet",
          linkType: iface.linkType,
          timestampNs: lastTimestampNs,
          capturedLength,
          originalLength,
          data: block.subarray(28, 28 + capturedLength),
          interfaceId,
          offset,
        };
        break;
      }
      case PcapngBlockType.SimplePacket: {
        need(4, "simple packet block");
        const iface = packetInterface(0);
        const originalLength = view.getUint32(8, littleEndian);
        let capturedLength = Math.min(originalLength, bodyEnd - 12);
        if (iface.snapLength !== 0) capturedLength = Math.min(capturedLength, iface.snapLength);
        yield {
          type: "packet",
          linkType: iface.linkType,
          timestampNs: lastTimestampNs,
          capturedLength,
          originalLength,
          data: block.subarray(12, 12 + capturedLength),
          interfaceId: 0,
          offset,
        };
        break;
      }
      case PcapngBlockType.DecryptionSecrets: {
        need(8, "decryption secrets block");
        const secretsType = view.getUint32(8, littleEndian);
        const secretsLength = view.getUint32(12, littleEndian);
        if (16 + secretsLength > bodyEnd) {
          throw new PcapFormatError(
            PcapErrorCode.BadRecord,
            `secrets length ${secretsLength} exceeds the ${bodyEnd - 16} bytes the block holds`,
            offset + 12,
          );
        }
        const data = block.subarray(16, 16 + secretsLength);
        if (secretsType === SecretsType.TlsKeyLog)
          yield { type: "tls-key-log", text: decoder.decode(data), offset };
        else yield { type: "secrets", secretsType, data, offset };
        break;
      }
      default:
        break;
    }
  }
}

interface PcapngOptionValue {
  readonly code: number;
  readonly value: Uint8Array;
}

/** Walks the options of a block from `start` to `end` (block-relative). `blockOffset` is for errors. */
function* walkOptions(
  block: Uint8Array,
  start: number,
  end: number,
  littleEndian: boolean,
  blockOffset: number,
): Generator<PcapngOptionValue> {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  let at = start;
  while (at + 4 <= end) {
    const code = view.getUint16(at, littleEndian);
    const length = view.getUint16(at + 2, littleEndian);
    if (code === PcapngOption.EndOfOptions) return;
    if (at + 4 + length > end) {
      throw new PcapFormatError(
        PcapErrorCode.BadOption,
        `option ${code} of length ${length} runs past its block`,
        blockOffset + at,
      );
    }
    yield { code, value: block.subarray(at + 4, at + 4 + length) };
    at += 4 + ((length + 3) & ~3);
  }
}
