export type { FlowDedupOptions, FlowDedupState } from "./flow-dedup.js";
export {
  DEFAULT_DEDUP_MAX_ENTRIES,
  FlowDedup,
  FlowDedupStats,
  flowKeyOf,
  frameDigest,
} from "./flow-dedup.js";
export type { RecordedBatch, ReplayTarget } from "./frame-batch.js";
export {
  FRAME_HEADER,
  FrameBatchError,
  FrameBatchEvent,
  FrameBatchRecorder,
  FrameBatchReplayer,
} from "./frame-batch.js";
export type { StreamMergeOptions } from "./stream-merge.js";
export { DEFAULT_MERGE_MAX_HELD_BYTES, MergeInput, StreamMerge, StreamMergeStats } from "./stream-merge.js";
