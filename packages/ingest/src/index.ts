export { QUIET_FLUSH_NS } from "./connection-tracker.js";
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
export { MAX_CHUNK_SPAN_NS, StreamReassembler } from "./stream-reassembler.js";
export type {
  IngestProblem,
  IngestSummary,
  TcpCounters,
  WrittenBlob,
  WrittenKeyLog,
  WrittenObject,
} from "./summary.js";
export { IngestProblemKind, SkipReason } from "./summary.js";
