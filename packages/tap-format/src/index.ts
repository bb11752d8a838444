export { connIdToHex, connShard, isConnId, writeConnId } from "./conn-id.js";
export { crc32, crc32c, crc32cImplementation, crc32Implementation } from "./crc32.js";
export {
  BadHeaderError,
  BadMagicError,
  BlobTooLargeError,
  ChecksumMismatchError,
  CtapError,
  CtapErrorCode,
  DecompressError,
  isCtapError,
  MalformedRecordError,
  MissingTrailerError,
  OversizedFrameError,
  TruncatedFrameError,
  UnsupportedVersionError,
} from "./errors.js";
export { FRAME_SYNC, MAGIC, MAX_FRAME_BODY_BYTES, VERSION_MAJOR, VERSION_MINOR } from "./layout.js";
export type { ParsedBlobKey } from "./object-key.js";
export {
  BLOB_SUFFIX,
  DATA_DIR,
  dataBlobKey,
  dataHourPrefix,
  dataPrefix,
  KEYLOG_SUFFIX,
  KEYS_DIR,
  keyLogKey,
  keysPrefix,
  parseBlobKey,
} from "./object-key.js";
export type { FramePeek, HeaderPeek } from "./peek.js";
export { peekFrame, peekHeader } from "./peek.js";
export type { CorruptionItem, CtapItem, CtapReadOptions, HeaderItem } from "./reader.js";
export { CtapReadStats, readCtap, readCtapBytes } from "./reader.js";
export type {
  AnyRecord,
  BlobEndRecord,
  BlobHeader,
  ConnCloseRecord,
  ConnOpenRecord,
  DatagramRecord,
  DataRecord,
  Endpoint,
  TapRecord,
  TcpOptionsSeen,
} from "./records.js";
export {
  CloseInitiator,
  CloseReason,
  Compression,
  Direction,
  directionName,
  FrameType,
  IdentityKey,
  Transport,
} from "./records.js";
export { isTapperId, TAPPER_ID_RULE } from "./tapper-id.js";
export type { ByteSink, CtapWriter, CtapWriterOptions } from "./writer.js";
export { CtapWriterStateError, createCtapWriter, encodeHeader, MemorySink } from "./writer.js";
