export { IngestError, IngestErrorCode, isIngestError } from "./errors.js";
export type { IngestOptions } from "./ingest.js";
export {
  DEFAULT_IDLE_TIMEOUT_NS,
  DEFAULT_MAX_BLOB_BYTES,
  DEFAULT_MAX_BUFFERED_BYTES_PER_DIRECTION,
  DEFAULT_MAX_CHUNK_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_TAPPER_ID,
  ingestCapture,
} from "./ingest.js";
export type { ReassembledChunk, ReassemblyCounters, StreamReassemblerOptions } from "./stream-reassembler.js";
export { StreamReassembler } from "./stream-reassembler.js";
export type {
  IngestProblem,
  IngestSummary,
  TcpCounters,
  WrittenBlob,
  WrittenKeyLog,
  WrittenObject,
} from "./summary.js";
export { IngestProblemKind, SkipReason } from "./summary.js";
