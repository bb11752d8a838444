/** What is wrong with a capture file. */
export const PcapErrorCode = {
  /** The file starts with neither a pcap nor a pcapng magic number. */
  BadMagic: "bad-magic",
  /** A format we recognise but do not read (modified pcap, gzip). */
  UnsupportedFormat: "unsupported-format",
  /** A pcap or pcapng major version this reader does not know. */
  BadVersion: "bad-version",
  /** A pcapng block length that is too small, not a multiple of 4, or does not match the trailing copy. */
  BadBlockLength: "bad-block-length",
  /** A record or block larger than the configured cap; refused before it is buffered. */
  BlockTooLarge: "block-too-large",
  /** The input ends inside a header, record or block. */
  Truncated: "truncated",
  /** A length field inside a block that does not fit the block. */
  BadRecord: "bad-record",
  /** A pcapng option whose length runs past its block. */
  BadOption: "bad-option",
  /** A pcapng packet block naming an interface no Interface Description Block declared. */
  UnknownInterface: "unknown-interface",
  /** A pcapng block before the first Section Header Block. */
  NoSectionHeader: "no-section-header",
} as const;
export type PcapErrorCode = (typeof PcapErrorCode)[keyof typeof PcapErrorCode];

/**
 * A capture that cannot be read. `offset` is the byte offset in the file of the field or block that is
 * wrong; the reader stops there ("report the first error; trust no bytes after it").
 */
export class PcapFormatError extends Error {
  override readonly name = "PcapFormatError";
  readonly code: PcapErrorCode;
  readonly offset: number;

  constructor(code: PcapErrorCode, message: string, offset: number, options?: ErrorOptions) {
    super(`${message} at offset ${offset}`, options);
    this.code = code;
    this.offset = offset;
  }
}

export function isPcapFormatError(err: unknown): err is PcapFormatError {
  return err instanceof PcapFormatError;
}

/** A writer asked to write something that would make an invalid file. */
export const PcapWriteErrorCode = {
  /** A packet whose `capturedLength` differs from its data or exceeds `originalLength`. */
  BadPacket: "bad-packet",
  /** A timestamp that the file's resolution cannot hold (negative, or past the 32/64-bit field). */
  BadTimestamp: "bad-timestamp",
  /** A packet naming an interface that was not added. */
  UnknownInterface: "unknown-interface",
  /** A link type or packet type the file kind cannot hold (pcap files have one link type). */
  LinkTypeMismatch: "link-type-mismatch",
  /** Writing after `close()`. */
  Closed: "closed",
} as const;
export type PcapWriteErrorCode = (typeof PcapWriteErrorCode)[keyof typeof PcapWriteErrorCode];

export class PcapWriteError extends Error {
  override readonly name = "PcapWriteError";
  readonly code: PcapWriteErrorCode;

  constructor(code: PcapWriteErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export function isPcapWriteError(err: unknown): err is PcapWriteError {
  return err instanceof PcapWriteError;
}
