export type { RecordedBatch, ReplayTarget } from "./frame-batch.js";
export { FrameBatchError, FrameBatchEvent, FrameBatchRecorder, FrameBatchReplayer } from "./frame-batch.js";
