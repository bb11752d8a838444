export type {
  ParallelStitchOptions,
  ParallelStitchOutput,
  ParallelStitchReport,
} from "./coordinator.js";
export { defaultWorkerCount, runParallelStitch } from "./coordinator.js";
export { isStitchWorkerError, StitchWorkerError, StitchWorkersErrorCode } from "./errors.js";
export type { ShardSettings } from "./protocol.js";
