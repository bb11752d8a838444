/**
 * Typed errors of the CTAP decoder. Every error carries the byte offset (in the decoded frame stream, i.e.
 * after decompression; the header counts from 0) where the problem starts, so tools can name it.
 */

export const CtapErrorCode = {
  BadMagic: "bad-magic",
  UnsupportedVersion: "unsupported-version",
  BadHeader: "bad-header",
  ChecksumMismatch: "checksum-mismatch",
  TruncatedFrame: "truncated-frame",
  OversizedFrame: "oversized-frame",
  MalformedRecord: "malformed-record",
  MissingTrailer: "missing-trailer",
  Decompress: "decompress",
  TooLarge: "too-large",
} as const;
export type CtapErrorCode = (typeof CtapErrorCode)[keyof typeof CtapErrorCode];

export class CtapError extends Error {
  override readonly name: string = "CtapError";
  constructor(
    readonly code: CtapErrorCode,
    message: string,
    /** Byte offset where the problem starts. */
    readonly offset: number,
    options?: { cause?: unknown },
  ) {
    super(`${message} (at byte ${offset})`, options);
  }
}

/** The input does not start with the CTAP magic: not a CTAP blob at all. */
export class BadMagicError extends CtapError {
  override readonly name = "BadMagicError";
  constructor(offset = 0) {
    super(CtapErrorCode.BadMagic, "not a CTAP blob: bad magic", offset);
  }
}

/** The blob's major version is one this reader does not know. */
export class UnsupportedVersionError extends CtapError {
  override readonly name = "UnsupportedVersionError";
  constructor(
    readonly major: number,
    readonly minor: number,
  ) {
    super(CtapErrorCode.UnsupportedVersion, `unsupported CTAP version ${major}.${minor}`, 8);
  }
}

/** The header is inconsistent (bad length, bad tapper id, unknown compression). */
export class BadHeaderError extends CtapError {
  override readonly name = "BadHeaderError";
  constructor(detail: string, offset: number) {
    super(CtapErrorCode.BadHeader, `bad CTAP header: ${detail}`, offset);
  }
}

/** A header or frame checksum does not match its bytes. */
export class ChecksumMismatchError extends CtapError {
  override readonly name = "ChecksumMismatchError";
  constructor(
    readonly what: "header" | "frame header" | "frame body",
    offset: number,
  ) {
    super(CtapErrorCode.ChecksumMismatch, `${what} checksum mismatch`, offset);
  }
}

/** The input ended inside a frame (or inside the header). */
export class TruncatedFrameError extends CtapError {
  override readonly name = "TruncatedFrameError";
  constructor(
    readonly have: number,
    readonly need: number,
    offset: number,
  ) {
    super(CtapErrorCode.TruncatedFrame, `truncated frame: input ended with ${have} of ${need} bytes`, offset);
  }
}

/** A frame declares a body larger than the reader's cap; rejected before any of it is buffered. */
export class OversizedFrameError extends CtapError {
  override readonly name = "OversizedFrameError";
  constructor(
    readonly length: number,
    readonly maxFrameBytes: number,
    offset: number,
  ) {
    super(
      CtapErrorCode.OversizedFrame,
      `frame body of ${length} bytes exceeds the cap of ${maxFrameBytes}`,
      offset,
    );
  }
}

/** A frame passed its checksum but its body does not hold a valid record of its type. */
export class MalformedRecordError extends CtapError {
  override readonly name = "MalformedRecordError";
  constructor(detail: string, offset: number) {
    super(CtapErrorCode.MalformedRecord, `malformed record: ${detail}`, offset);
  }
}

/** The input ended at a frame boundary but without the blob-end frame: the blob was cut short. */
export class MissingTrailerError extends CtapError {
  override readonly name = "MissingTrailerError";
  constructor(offset: number) {
    super(CtapErrorCode.MissingTrailer, "blob ended without its blob-end frame (truncated blob)", offset);
  }
}

/** The compressed body could not be decompressed. */
export class DecompressError extends CtapError {
  override readonly name = "DecompressError";
  constructor(offset: number, cause: unknown) {
    super(CtapErrorCode.Decompress, "compressed blob body is corrupt", offset, { cause });
  }
}

/**
 * A compressed blob whose compressed bytes, or what they inflate to, pass the reader's cap (a decompression
 * bomb, or a cap set too low): the reader stops there, before holding more.
 */
export class BlobTooLargeError extends CtapError {
  override readonly name = "BlobTooLargeError";
  constructor(
    readonly what: "compressed" | "inflated",
    readonly limitBytes: number,
    offset: number,
  ) {
    super(CtapErrorCode.TooLarge, `${what} blob passes the cap of ${limitBytes} bytes`, offset);
  }
}

export function isCtapError(err: unknown): err is CtapError {
  return err instanceof CtapError;
}
