export type {
  ParallelStitchOptions,
  ParallelStitchOutput,
  ParallelStitchReport,
} from "./coordinator.js";
export { defaultWorkerCount, runParallelStitch } from "./coordinator.js";
export type { ShardSettings } from "./protocol.js";
