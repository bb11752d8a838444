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
export type { SupervisedProcessOptions } from "./supervised-process.js";
export { SupervisedProcess } from "./supervised-process.js";
export { serviceCommand, workspaceRoot } from "./workspace.js";
