export type { ByteSink } from "./byte-sink.js";
export type {
  CaptureEncoder,
  CaptureEncoderOptions,
  PcapEncoderOptions,
  PcapngEncoder,
  PcapngEncoderOptions,
} from "./capture-encoder.js";
export { createPcapEncoder, createPcapngEncoder } from "./capture-encoder.js";
export type {
  CaptureItem,
  CapturePacket,
  CaptureReaderOptions,
  CaptureSecrets,
  CaptureTlsKeyLog,
} from "./capture-item.js";
export { DEFAULT_MAX_BLOCK_BYTES, SecretsType } from "./capture-item.js";
export type { CaptureFormat } from "./capture-reader.js";
export { detectCaptureFormat, readCapture } from "./capture-reader.js";
export {
  isPcapFormatError,
  isPcapWriteError,
  PcapErrorCode,
  PcapFormatError,
  PcapWriteError,
  PcapWriteErrorCode,
} from "./errors.js";
export { PcapMagic } from "./pcap-reader.js";
export type { PacketToWrite, PcapWriter, PcapWriterOptions } from "./pcap-writer.js";
export { createPcapWriter, DEFAULT_SNAP_LENGTH, DEFAULT_WRITE_CHUNK_BYTES } from "./pcap-writer.js";
export { PcapngBlockType, PcapngOption } from "./pcapng-reader.js";
export type {
  PcapngInterface,
  PcapngPacketToWrite,
  PcapngWriter,
  PcapngWriterOptions,
} from "./pcapng-writer.js";
export { createPcapngWriter } from "./pcapng-writer.js";
export type { RecordFormat } from "./record-merge.js";
export { mergeCaptureRecords } from "./record-merge.js";
