export type {
  ParallelStitchOptions,
  ParallelStitchOutput,
  ParallelStitchReport,
} from "./coordinator.js";
export { defaultWorkerCount, runParallelStitch } from "./coordinator.js";
export {
  isStitchWorkerError,
  StitchWorkerError,
  StitchWorkersErrorCode,
  StoreThreadError,
} from "./errors.js";
export type { ShardSettings } from "./protocol.js";
export type { StoreOnThread, StoreOnThreadOptions } from "./store-thread.js";
export { openStoreOnThread } from "./store-thread.js";
