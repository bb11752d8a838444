/** The egress's de-duplication, for mirror-egress to build (services depend on the mesh only). */
export { FlowDedup } from "@cloudtap/mirror";
export { reportBusEvents } from "./bus-events.js";
export { startCpuProfileFromEnv } from "./cpu-profile.js";
export type { EgressJournalCommit, LoadedEgressJournal } from "./egress-journal.js";
export { DEFAULT_EGRESS_JOURNAL_MAX_BYTES, EGRESS_JOURNAL_FILE, EgressJournal } from "./egress-journal.js";
export type { BlobStateEntry, FetchMode, FetchStage, FetchStageOptions } from "./fetch-stage.js";
export {
  blobStateKey,
  createFetchStage,
  cursorKey,
  DEFAULT_DRAIN_CHECK_MS,
  DEFAULT_FETCH_ACK_WAIT_MS,
  DEFAULT_MAX_BLOB_BYTES,
  FetchStageState,
  QuarantineReason,
} from "./fetch-stage.js";
export type { GrpcMirrorLinkOptions, MirrorEndpoint, MirrorHandlerOptions } from "./mirror-stage.js";
export {
  DEFAULT_MIRROR_MAX_IN_FLIGHT,
  DEFAULT_MIRROR_SILENT_AFTER_MS,
  grpcMirrorLink,
  mirrorEndpoint,
  mirrorHandlers,
} from "./mirror-stage.js";
export type { FollowReplaysOptions, ReplayHandlerOptions, ReplayRecord } from "./replay.js";
export {
  followReplays,
  listReplayRecords,
  newReplayId,
  openReplays,
  ReplayError,
  ReplayState,
  replayHandlers,
  replayRecordKey,
  replayShardKey,
  replayShardsDone,
  runCounters,
  settleReplay,
} from "./replay.js";
export type { StatusSource } from "./rpc-links.js";
export { grpcKeyLookup, statusHandlers } from "./rpc-links.js";
export type { ShardLeaseHooks, ShardLeases, ShardLeasesOptions } from "./shard-leases.js";
export {
  assignedShards,
  DEFAULT_SHARD_LEASE_BEAT_MS,
  DEFAULT_SHARD_LEASE_TTL_MS,
  runShardLeases,
  SHARD_LEASE_BUCKET,
} from "./shard-leases.js";
export type { StageFigures } from "./stage-latency.js";
export {
  MeshStage,
  PUBLISHED_MS_HEADER,
  STAGE_BOUNDS_MS,
  StageLatency,
  stageQuantiles,
} from "./stage-latency.js";
export type { KeyLookup, MirrorLink, ShardStatus, StitchStage, StitchStageOptions } from "./stitch-stage.js";
export {
  DEFAULT_STITCH_LATENESS_NS,
  DEFAULT_STITCH_PULL_BYTES,
  pullMessagesPerShard,
  startStitchStage,
} from "./stitch-stage.js";
