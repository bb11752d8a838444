/**
 * Byte layout constants of CTAP v1. docs/tap-format.md is the normative description; this file mirrors it.
 * All integers are little-endian.
 */

/** "\x89CTAP\r\n\x1a": the high byte catches 7-bit transfers, CR LF and ^Z catch text-mode rewriting. */
export const MAGIC = Uint8Array.of(0x89, 0x43, 0x54, 0x41, 0x50, 0x0d, 0x0a, 0x1a);
export const VERSION_MAJOR = 1;
export const VERSION_MINOR = 0;

export const Header = {
  magic: 0,
  versionMajor: 8,
  versionMinor: 10,
  headerLength: 12,
  flags: 16,
  reserved: 20,
  sequence: 24,
  startNs: 32,
  tapperIdLength: 40,
  tapperId: 42,
  /** Header bytes besides the tapper id: 42 fixed + 4 CRC. */
  fixedBytes: 46,
  maxBytes: 4096,
  maxTapperIdBytes: 255,
} as const;

export const HEADER_FLAG_COMPRESSION_MASK = 0x0f;

/** Every frame starts with this u16 (bytes C7 5A on the wire). */
export const FRAME_SYNC = 0x5ac7;
export const FRAME_SYNC_BYTE0 = 0xc7;
export const FRAME_SYNC_BYTE1 = 0x5a;

export const Frame = {
  sync: 0,
  type: 2,
  bodyLength: 4,
  bodyCrc: 8,
  headerCrc: 12,
  headerBytes: 16,
} as const;

/** Writers never produce a frame body larger than this; readers default their cap to it. */
export const MAX_FRAME_BODY_BYTES = 16 * 1024 * 1024;

export const ConnOpenLayout = {
  connId: 0,
  timestampNs: 16,
  transport: 24,
  ipVersion: 25,
  flags: 26,
  clientAddress: 28,
  serverAddress: 44,
  clientPort: 60,
  serverPort: 62,
  clientMss: 64,
  serverMss: 66,
  clientWindowScale: 68,
  serverWindowScale: 69,
  /** u16: where the attribute list starts; 80 in v1.0. Later minor versions may add fields before it. */
  attributesOffset: 70,
  clientIsn: 72,
  serverIsn: 76,
  fixedBytes: 80,
} as const;

export const ConnOpenFlag = {
  Midstream: 1 << 0,
  SackPermitted: 1 << 1,
  Timestamps: 1 << 2,
  ClientIsnKnown: 1 << 3,
  ServerIsnKnown: 1 << 4,
} as const;

/** 0xFF in a window-scale byte means "not seen". */
export const WINDOW_SCALE_UNKNOWN = 0xff;

export const DataLayout = {
  connId: 0,
  timestampNs: 16,
  offset: 24,
  spanNs: 32,
  direction: 36,
  flags: 37,
  /** u16: where the payload starts; 40 in v1.0. */
  payloadOffset: 38,
  fixedBytes: 40,
} as const;

export const DatagramLayout = {
  connId: 0,
  timestampNs: 16,
  index: 24,
  reserved: 32,
  direction: 36,
  flags: 37,
  payloadOffset: 38,
  fixedBytes: 40,
} as const;

export const ConnCloseLayout = {
  connId: 0,
  timestampNs: 16,
  reason: 24,
  initiator: 25,
  reserved: 26,
  bytesClientToServer: 32,
  bytesServerToClient: 40,
  fixedBytes: 48,
} as const;

export const BlobEndLayout = {
  endNs: 0,
  frameCount: 8,
  payloadBytes: 16,
  fixedBytes: 24,
} as const;
