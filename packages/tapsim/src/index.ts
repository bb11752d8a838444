export type { AppliedGap, AppliedTruncation } from "./blob-recorder.js";
export type { StreamDigest } from "./byte-tally.js";
export type { ApplicationProtocol } from "./connection-plan.js";
export type { DnsQueryResult } from "./dns.js";
export {
  ConnectionFailedError,
  ConnectionTimeoutError,
  ConsistencyViolationError,
  InvalidSimulationOptionsError,
  isSimulationError,
  SimulationError,
  SimulationErrorCode,
} from "./errors.js";
export type { HttpExchangeResult } from "./http1.js";
export type {
  AppliedFaults,
  FaultFlags,
  ManifestBlob,
  ManifestConnection,
  ManifestDirection,
  ManifestEndpoint,
  ManifestKeyLog,
  ManifestTcpOptions,
  ManifestTls,
  NonDeterministicField,
  SimulationManifest,
} from "./manifest.js";
export { MANIFEST_FORMAT, maskNonDeterministic, NON_DETERMINISTIC_FIELDS } from "./manifest.js";
export type {
  SimulationFaults,
  SimulationOptions,
  SimulationProgress,
  SimulationResult,
} from "./simulation.js";
export {
  DEFAULT_BLOB_AGE_NS,
  DEFAULT_BLOB_SIZE,
  DEFAULT_CONCURRENCY,
  DEFAULT_MEAN_INTER_ARRIVAL_NS,
  DEFAULT_START_NS,
  DEFAULT_TAPPER_IDS,
  MAX_START_NS,
  runSimulation,
} from "./simulation.js";
export type { TlsSuiteProfile, TlsVersion } from "./tls-profiles.js";
export { TLS_SUITES } from "./tls-profiles.js";
