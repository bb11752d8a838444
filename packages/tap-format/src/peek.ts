/**
 * Pure peek functions: given the bytes at hand, say whether a complete header or frame is there, how large it
 * is, or what is wrong with it. They never throw and never copy; the streaming reader is built on them.
 */

import { crc32, crc32Short } from "./crc32.js";
import {
  BadHeaderError,
  BadMagicError,
  ChecksumMismatchError,
  CtapError,
  OversizedFrameError,
  UnsupportedVersionError,
} from "./errors.js";
import {
  FRAME_SYNC_BYTE0,
  FRAME_SYNC_BYTE1,
  Frame,
  HEADER_FLAG_COMPRESSION_MASK,
  Header,
  MAGIC,
  MAX_FRAME_BODY_BYTES,
  VERSION_MAJOR,
} from "./layout.js";
import { type BlobHeader, Compression } from "./records.js";
import { isTapperId, TAPPER_ID_RULE } from "./tapper-id.js";

export type HeaderPeek =
  | { readonly kind: "incomplete"; readonly need: number }
  | { readonly kind: "header"; readonly header: BlobHeader; readonly size: number }
  | { readonly kind: "invalid"; readonly error: CtapError };

export type FramePeek =
  | { readonly kind: "incomplete"; readonly need: number }
  | {
      readonly kind: "frame";
      readonly type: number;
      /** Offset of the body within the bytes given. */
      readonly bodyOffset: number;
      readonly bodyLength: number;
      readonly bodyCrc: number;
      /** Header plus body. */
      readonly size: number;
    }
  | { readonly kind: "invalid"; readonly error: CtapError };

const compressions = new Set<number>(Object.values(Compression));
const tapperIdDecoder = new TextDecoder("utf-8", { fatal: true });

function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Peeks the blob header at the start of `bytes`. `need` is the total number of bytes required. */
export function peekHeader(bytes: Uint8Array): HeaderPeek {
  const have = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < have; i++) {
    if (bytes[i] !== MAGIC[i]) return { kind: "invalid", error: new BadMagicError(0) };
  }
  if (bytes.length < Header.tapperId) return { kind: "incomplete", need: Header.tapperId };
  const dv = dataView(bytes);
  const major = dv.getUint16(Header.versionMajor, true);
  const minor = dv.getUint16(Header.versionMinor, true);
  if (major !== VERSION_MAJOR) return { kind: "invalid", error: new UnsupportedVersionError(major, minor) };
  const size = dv.getUint32(Header.headerLength, true);
  const idLength = dv.getUint16(Header.tapperIdLength, true);
  if (idLength < 1 || idLength > Header.maxTapperIdBytes) {
    return {
      kind: "invalid",
      error: new BadHeaderError(`tapper id length ${idLength}`, Header.tapperIdLength),
    };
  }
  if (size < Header.fixedBytes + idLength || size > Header.maxBytes) {
    return { kind: "invalid", error: new BadHeaderError(`header length ${size}`, Header.headerLength) };
  }
  if (bytes.length < size) return { kind: "incomplete", need: size };
  const stored = dv.getUint32(size - 4, true);
  if (crc32(bytes.subarray(0, size - 4)) !== stored) {
    return { kind: "invalid", error: new ChecksumMismatchError("header", 0) };
  }
  const flags = dv.getUint32(Header.flags, true);
  const compression = flags & HEADER_FLAG_COMPRESSION_MASK;
  if (!compressions.has(compression)) {
    return { kind: "invalid", error: new BadHeaderError(`unknown compression ${compression}`, Header.flags) };
  }
  let tapperId: string;
  try {
    tapperId = tapperIdDecoder.decode(bytes.subarray(Header.tapperId, Header.tapperId + idLength));
  } catch {
    tapperId = "";
  }
  if (!isTapperId(tapperId)) {
    return {
      kind: "invalid",
      error: new BadHeaderError(`tapper id is not ${TAPPER_ID_RULE}`, Header.tapperId),
    };
  }
  return {
    kind: "header",
    size,
    header: {
      versionMajor: major,
      versionMinor: minor,
      tapperId,
      sequence: dv.getBigUint64(Header.sequence, true),
      startNs: dv.getBigUint64(Header.startNs, true),
      compression: compression as Compression,
      headerBytes: size,
    },
  };
}

/**
 * Peeks the frame at `bytes[offset]`. Checks the sync word, the header checksum, and the declared body
 * length against `maxFrameBytes` before anything else, so a hostile length is rejected without buffering.
 * The body checksum is not verified here (the body may not be present yet): see `bodyCrc`.
 * `streamOffset` is the stream position of `bytes[offset]`, used in errors.
 */
export function peekFrame(
  bytes: Uint8Array,
  offset = 0,
  maxFrameBytes: number = MAX_FRAME_BODY_BYTES,
  streamOffset = offset,
): FramePeek {
  const avail = bytes.length - offset;
  if (avail < Frame.headerBytes) return { kind: "incomplete", need: Frame.headerBytes };
  const h = parseFrameHeader(bytes, offset, maxFrameBytes, streamOffset);
  if (h instanceof CtapError) return { kind: "invalid", error: h };
  const size = Frame.headerBytes + h.bodyLength;
  if (avail < size) return { kind: "incomplete", need: size };
  return {
    kind: "frame",
    type: h.type,
    bodyOffset: offset + Frame.headerBytes,
    bodyLength: h.bodyLength,
    bodyCrc: h.bodyCrc,
    size,
  };
}

export interface FrameHeaderFields {
  readonly type: number;
  readonly bodyLength: number;
  readonly bodyCrc: number;
}

/**
 * Whether the 16 bytes at `bytes[offset]` (which must be present) are a frame header that `parseFrameHeader`
 * accepts. Builds no error object (a stack trace costs microseconds): the resync scan asks it per candidate.
 */
export function isValidFrameHeader(bytes: Uint8Array, offset: number, maxFrameBytes: number): boolean {
  const b = bytes;
  const o = offset;
  if (b[o] !== FRAME_SYNC_BYTE0 || b[o + 1] !== FRAME_SYNC_BYTE1) return false;
  const stored = (b[o + 12]! | (b[o + 13]! << 8) | (b[o + 14]! << 16) | (b[o + 15]! << 24)) >>> 0;
  if (crc32Short(b, o, o + Frame.headerCrc) !== stored) return false;
  return (b[o + 4]! | (b[o + 5]! << 8) | (b[o + 6]! << 16) | (b[o + 7]! << 24)) >>> 0 <= maxFrameBytes;
}

/**
 * Checks and parses the 16-byte frame header at `bytes[offset]` (which must be present): sync word, header
 * checksum, body length against the cap. Returns the error instead of throwing.
 */
export function parseFrameHeader(
  bytes: Uint8Array,
  offset: number,
  maxFrameBytes: number,
  streamOffset: number,
): FrameHeaderFields | CtapError {
  const b = bytes;
  const o = offset;
  const stored = (b[o + 12]! | (b[o + 13]! << 8) | (b[o + 14]! << 16) | (b[o + 15]! << 24)) >>> 0;
  if (
    b[o] !== FRAME_SYNC_BYTE0 ||
    b[o + 1] !== FRAME_SYNC_BYTE1 ||
    crc32Short(b, o, o + Frame.headerCrc) !== stored
  ) {
    return new ChecksumMismatchError("frame header", streamOffset);
  }
  const bodyLength = (b[o + 4]! | (b[o + 5]! << 8) | (b[o + 6]! << 16) | (b[o + 7]! << 24)) >>> 0;
  if (bodyLength > maxFrameBytes) return new OversizedFrameError(bodyLength, maxFrameBytes, streamOffset);
  return {
    type: b[o + 2]! | (b[o + 3]! << 8),
    bodyLength,
    bodyCrc: (b[o + 8]! | (b[o + 9]! << 8) | (b[o + 10]! << 16) | (b[o + 11]! << 24)) >>> 0,
  };
}
