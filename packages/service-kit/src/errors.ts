/**
 * Typed errors of the service kit. A bad configuration stops a service at start, before it opens a port or a
 * connection, with a message naming every variable at fault.
 */

export const ServiceKitErrorCode = {
  InvalidConfig: "invalid-config",
  ConfigFile: "config-file",
  InvalidLogLevel: "invalid-log-level",
  ShutdownDeadline: "shutdown-deadline",
} as const;
export type ServiceKitErrorCode = (typeof ServiceKitErrorCode)[keyof typeof ServiceKitErrorCode];

export class ServiceKitError extends Error {
  override readonly name: string = "ServiceKitError";
  constructor(
    readonly code: ServiceKitErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One variable that is missing or does not parse. `value` is absent for secrets and missing variables. */
export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
  readonly value?: string;
}

/**
 * The effective configuration is invalid. `variable` names the first variable at fault; `problems` lists all
 * of them, so an operator fixes the environment in one go.
 */
export class ConfigError extends ServiceKitError {
  override readonly name = "ConfigError";
  readonly variable: string;
  constructor(
    readonly problems: readonly ConfigProblem[],
    options?: { cause?: unknown },
  ) {
    super(
      ServiceKitErrorCode.InvalidConfig,
      `invalid configuration: ${problems
        .map((p) => `${p.variable}: ${p.problem}${p.value === undefined ? "" : ` (got "${p.value}")`}`)
        .join("; ")}`,
      options,
    );
    this.variable = problems[0]?.variable ?? "";
  }
}

/** The YAML file named by `<SERVICE>_CONFIG` cannot be read or is not a mapping of scalars. */
export class ConfigFileError extends ServiceKitError {
  override readonly name = "ConfigFileError";
  constructor(
    readonly variable: string,
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(ServiceKitErrorCode.ConfigFile, `${variable}: config file ${file}: ${detail}`, options);
  }
}

/** `<SERVICE>_LOG_LEVEL` or `LOG_LEVEL` holds something other than a level. */
export class InvalidLogLevelError extends ServiceKitError {
  override readonly name = "InvalidLogLevelError";
  constructor(
    readonly variable: string,
    readonly value: string,
  ) {
    super(
      ServiceKitErrorCode.InvalidLogLevel,
      `${variable}: "${value}" is not a log level (debug, info, warn, error, silent)`,
    );
  }
}

/** Shutdown steps did not finish within the deadline. */
export class ShutdownDeadlineError extends ServiceKitError {
  override readonly name = "ShutdownDeadlineError";
  constructor(
    readonly step: string,
    readonly deadlineMs: number,
  ) {
    super(
      ServiceKitErrorCode.ShutdownDeadline,
      `shutdown step "${step}" passed the ${deadlineMs} ms deadline`,
    );
  }
}

export function isConfigError(err: unknown): err is ConfigError | ConfigFileError {
  return err instanceof ConfigError || err instanceof ConfigFileError;
}
