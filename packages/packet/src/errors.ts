/** Why a packet could not be parsed. */
export const PacketErrorCode = {
  /** The bytes end before the header (or a length field) says they should. */
  Truncated: "truncated",
  /** An IP version nibble that does not match the header being parsed. */
  BadVersion: "bad-version",
  /** A header length field smaller than the fixed header or larger than the packet. */
  BadHeaderLength: "bad-header-length",
  /** A total/payload length field that contradicts the header. */
  BadLength: "bad-length",
  /** A TCP or IP option whose length field is invalid. */
  BadOption: "bad-option",
  /** Too many stacked headers (VLAN tags, IPv6 extension headers). */
  TooManyHeaders: "too-many-headers",
  /** A link-layer type this package does not decode. */
  UnsupportedLinkType: "unsupported-link-type",
} as const;
export type PacketErrorCode = (typeof PacketErrorCode)[keyof typeof PacketErrorCode];

/** The protocol layer a parser was working on when it failed. */
export type PacketLayer =
  | "ethernet"
  | "linux-sll"
  | "linux-sll2"
  | "null"
  | "link"
  | "ipv4"
  | "ipv6"
  | "tcp"
  | "tcp-options"
  | "udp";

/**
 * A packet that is not well formed. `offset` is the byte position inside the bytes handed to the failing
 * parser (not the whole frame), so that the message points at the field that is wrong.
 */
export class MalformedPacketError extends Error {
  override readonly name = "MalformedPacketError";
  readonly code: PacketErrorCode;
  readonly layer: PacketLayer;
  readonly offset: number;

  constructor(
    layer: PacketLayer,
    code: PacketErrorCode,
    message: string,
    offset: number,
    options?: ErrorOptions,
  ) {
    super(`${layer}: ${message} at offset ${offset}`, options);
    this.layer = layer;
    this.code = code;
    this.offset = offset;
  }
}

export function isMalformedPacketError(err: unknown): err is MalformedPacketError {
  return err instanceof MalformedPacketError;
}
