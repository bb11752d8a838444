export type { ConfigField, ConfigSpec, ConfigValues, LoadConfigOptions, LoadedConfig } from "./config.js";
export { ConfigSource, describeConfig, envPrefix, loadConfig, yamlKey } from "./config.js";
export type { HostPort, IntegerRange, ValueParser } from "./config-parsers.js";
export {
  formatHostPort,
  hexKey,
  integer,
  listOf,
  oneOf,
  parseBoolean,
  parseDurationMs,
  parseHostPort,
  parseIntegerRange,
  parseSize,
  parseString,
  parseTimestampNs,
} from "./config-parsers.js";
export type { Counter, CounterLabels, CounterRegistry, CounterSeries, Gauge } from "./counters.js";
export { createCounters, seriesName } from "./counters.js";
export type { ConfigProblem } from "./errors.js";
export {
  ConfigError,
  ConfigFileError,
  InvalidLogLevelError,
  isConfigError,
  ServiceKitError,
  ServiceKitErrorCode,
  ShutdownDeadlineError,
} from "./errors.js";
export {
  EXIT_REASON_FILE_ENV,
  EXIT_WITH_PARENT_ENV,
  exitWithParent,
  isPermanentExit,
  recordExitReason,
  ServiceExitCode,
} from "./exit.js";
export type { ListenReport } from "./listening.js";
export { LISTEN_FILE_ENV, ListenRole, parseListenReport, recordListening } from "./listening.js";
export type { LogDestination, LogFields, Logger, LoggerOptions } from "./logger.js";
export { createLogger, LogLevel, logFileFromEnv, logLevelFromEnv } from "./logger.js";
export { isSecretFieldName, REDACTED_TEXT, redactValue } from "./redact.js";
export type { BootedService } from "./service-boot.js";
export { bootService } from "./service-boot.js";
export type { Shutdown, ShutdownOptions, ShutdownStep } from "./shutdown.js";
export { createShutdown, DEFAULT_SHUTDOWN_DEADLINE_MS, processShutdown } from "./shutdown.js";
