export type { BlobStateEntry, FetchMode, FetchStage, FetchStageOptions } from "./fetch-stage.js";
export {
  blobStateKey,
  createFetchStage,
  cursorKey,
  DEFAULT_FETCH_ACK_WAIT_MS,
  DEFAULT_MAX_BLOB_BYTES,
  FetchStageState,
  QuarantineReason,
} from "./fetch-stage.js";
