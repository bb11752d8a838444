export { isStitchError, StitchError, StitchErrorCode, StitchSettingsError } from "./errors.js";
export type {
  FollowFlowMark,
  FollowJobOptions,
  FollowJobReport,
  FollowReplayBlob,
  FollowState,
} from "./follow-job.js";
export { FOLLOW_STATE_VERSION, runFollowJob } from "./follow-job.js";
export type { Endpoints, LinkOptions } from "./frame-writer.js";
export { clientMacFor, DEFAULT_GATEWAY_MAC, FlowTemplates } from "./frame-writer.js";
export type { KeyLogsAdded } from "./key-logs.js";
export { addKeyLogs, MALFORMED_KEY_LOG_LINES } from "./key-logs.js";
export type {
  FlowTableCounters,
  FormatOptions,
  KeyLogCounters,
  OutputCounters,
  StitcherCounters,
  StitchRunInput,
  StitchRunReport,
} from "./run-report.js";
export {
  counterProblems,
  flowTableCountersOf,
  formatStitchRunReport,
  MAX_TLS_CONNECTIONS_REPORTED,
  RUN_PROBLEM_WHERE,
  stitcherCountersOf,
  stitchRunReport,
  sumCounters,
} from "./run-report.js";
export type {
  ChunkedOutput,
  OutputSink,
  StitchJobOptions,
  StitchJobReport,
  StitchProgress,
} from "./stitch-job.js";
export { runStitchJob } from "./stitch-job.js";
export type {
  FlowIdentity,
  StitchedFlow,
  StitcherOptions,
  StitcherTimeOrderOptions,
  StitcherTlsOptions,
} from "./stitcher.js";
export {
  DEFAULT_KEY_WAIT_NS,
  DEFAULT_MAX_HELD_BYTES_PER_FLOW,
  DEFAULT_MTU,
  DEFAULT_REORDER_WINDOW_NS,
  DEFAULT_TIME_ORDER_WINDOW_NS,
  MERGED_TIME_ORDER,
  Stitcher,
  StitcherStats,
} from "./stitcher.js";
export type { StitcherSettings, StitcherWiring } from "./stitcher-settings.js";
export { createStitcherFromSettings, tlsNeeded } from "./stitcher-settings.js";
export type { TcpHandshakeOptions, TcpSynthOptions } from "./tcp-synth.js";
export { TcpFlags, TcpSynth, TcpSynthStats } from "./tcp-synth.js";
export type { OutOfRangeRecord, TimeSanityOptions } from "./time-sanity.js";
export {
  BlobTimeGuard,
  DEFAULT_MAX_AFTER_START_NS,
  DEFAULT_MAX_BEFORE_START_NS,
  END_OF_STAMPABLE_NS,
} from "./time-sanity.js";
export type {
  TlsConnectionIdentity,
  TlsConnectionProblem,
  TlsFlowReport,
  TlsVariantOptions,
} from "./tls-variant.js";
export {
  createCleartextPortMap,
  DEFAULT_CLEARTEXT_PORT,
  DEFAULT_CLEARTEXT_PORTS,
  DEFAULT_MAX_KEY_WAIT_BYTES,
  keyLogLines,
  MAX_LISTED_TLS_CONNECTIONS,
  TlsFlowVariants,
  TlsVariantStats,
  Variant,
} from "./tls-variant.js";
export type { UdpSynthOptions } from "./udp-synth.js";
export { UdpSynth, UdpSynthStats } from "./udp-synth.js";
