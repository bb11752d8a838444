export type { FollowOptions, FollowPoll, ListedBlob } from "./blob-follower.js";
export { DEFAULT_FOLLOW_LATENESS_NS, DEFAULT_FOLLOW_POLL_MS, followBlobs } from "./blob-follower.js";
export type { BlobWindow } from "./blob-listing.js";
export { DEFAULT_LOOKBACK_NS, listBlobs, listKeyLogs, sortBlobsByTime } from "./blob-listing.js";
export type { BlobProblem, BlobSource } from "./blob-source.js";
export { FetchError, FetchErrorCode, isFetchError, ObjectTooLargeError } from "./errors.js";
export type { KeyLogReadOptions, KeyLogsRead, KeyLogText, KeyLogWindow } from "./key-logs.js";
export {
  DEFAULT_KEY_LATENESS_NS,
  DEFAULT_MAX_KEY_LOG_BYTES,
  gunzipCapped,
  inflateKeyLog,
  isKeyLogKey,
  readKeyLogs,
} from "./key-logs.js";
export type { FetchedBlob, ReadAheadOptions } from "./read-ahead.js";
export {
  DEFAULT_READ_AHEAD_DEPTH,
  DEFAULT_READ_AHEAD_MAX_BYTES,
  joinChunks,
  readAhead,
} from "./read-ahead.js";
export type { ShardBatch, ShardBatches, ShardBatchOptions } from "./shard-batches.js";
export {
  batchMsgId,
  DEFAULT_BATCH_MAX_BYTES,
  DEFAULT_BATCH_TARGET_BYTES,
  shardBatches,
} from "./shard-batches.js";
