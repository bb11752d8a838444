export {
  isPermanentExit,
  MeshInstanceFailedError,
  PERMANENT_EXIT_CODES,
  STORE_CANNOT_OPEN_EXIT_CODE,
} from "./errors.js";
export { freePort } from "./free-port.js";
export type {
  LocalMeshEvents,
  LocalMeshOutputs,
  LocalMeshPlan,
  MeshInstance,
  MeshState,
} from "./local-mesh.js";
export { egressEnvironment, LocalMesh, MESH_STATE_FILE, MeshService, queryStatuses } from "./local-mesh.js";
export type { ReplayPlan, ReplayProgress, ReplayStateFile } from "./local-replay.js";
export { LocalReplay, queryReplays, REPLAYS_DIR, runningReplayFiles } from "./local-replay.js";
export type { ProcessExit, SupervisedProcessOptions } from "./supervised-process.js";
export { defaultRestartDelayMs, EXIT_REASON_FILE_ENV, SupervisedProcess } from "./supervised-process.js";
export { serviceCommand, workspaceRoot } from "./workspace.js";
