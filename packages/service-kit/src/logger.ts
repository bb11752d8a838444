/**
 * JSON-lines logging on pino: one object per line with `time`, `level`, `service`, `instance`, `pid`, `msg`,
 * the trace context of the active span (`trace_id`, `span_id`, `trace_flags`, so a log line opens its trace
 * in Jaeger), then the fields of the logger (`child`) and of the call. Everything logged goes through
 * `redactValue` first, so a config object or an error with a credential in it prints `[redacted]` in its
 * place. Written to stderr by default, and also appended to the file `<SERVICE>_LOG_FILE` (else `LOG_FILE`)
 * names; writes are synchronous so a line is never lost when the process exits right after.
 */
import { hostname } from "node:os";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import pino from "pino";
import { envPrefix } from "./config.js";
import { InvalidLogLevelError } from "./errors.js";
import { redactValue } from "./redact.js";

export const LogLevel = {
  Debug: "debug",
  Info: "info",
  Warn: "warn",
  Error: "error",
  Silent: "silent",
} as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{blob: key}`); same level and destination. */
  child(fields: LogFields): Logger;
}

/** Where lines go: a function given one line with its newline. */
export type LogDestination = (line: string) => void;

export interface LoggerOptions {
  readonly service: string;
  /** Default: `<host name>-<pid>`. */
  readonly instance?: string;
  /** Default: `<SERVICE>_LOG_LEVEL`, else `LOG_LEVEL`, else info. */
  readonly level?: LogLevel;
  /**
   * Default: stderr, plus the file of `<SERVICE>_LOG_FILE` (else `LOG_FILE`) when one is set. A string is a
   * file path, appended to (instead of stderr).
   */
  readonly destination?: LogDestination | string;
  /** Read for the level and the log file; default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default `() => new Date()`; tests pass a fixed clock. */
  readonly now?: () => Date;
}

function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(RANK, s);
}

/** The level a service's environment asks for. Throws InvalidLogLevelError naming the variable. */
export function logLevelFromEnv(
  service: string,
  env: Readonly<Record<string, string | undefined>>,
): LogLevel {
  for (const variable of [`${envPrefix(service)}_LOG_LEVEL`, "LOG_LEVEL"]) {
    const v = env[variable]?.trim().toLowerCase();
    if (v === undefined || v === "") continue;
    if (!isLogLevel(v)) throw new InvalidLogLevelError(variable, v);
    return v;
  }
  return LogLevel.Info;
}

/** The log file a service's environment names (`<SERVICE>_LOG_FILE`, then `LOG_FILE`), if any. */
export function logFileFromEnv(
  service: string,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  for (const variable of [`${envPrefix(service)}_LOG_FILE`, "LOG_FILE"]) {
    const v = env[variable]?.trim();
    if (v) return v;
  }
  return undefined;
}

/** The active span's ids, as the OpenTelemetry log data model names them. */
function traceFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  if (!isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId, trace_flags: `0${ctx.traceFlags.toString(16)}` };
}

function fileStream(path: string): pino.DestinationStream {
  return pino.destination({ dest: path, append: true, sync: true, mkdir: true });
}

function streamOf(options: LoggerOptions, env: Readonly<Record<string, string | undefined>>) {
  const dest = options.destination;
  if (typeof dest === "function") return { write: (line: string) => dest(line) };
  if (typeof dest === "string") return fileStream(dest);
  const stderr = pino.destination({ fd: 2, sync: true });
  const file = logFileFromEnv(options.service, env);
  if (file === undefined) return stderr;
  return pino.multistream([
    { stream: stderr, level: "trace" },
    { stream: fileStream(file), level: "trace" },
  ]);
}

export function createLogger(options: LoggerOptions): Logger {
  const env = options.env ?? process.env;
  const level = options.level ?? logLevelFromEnv(options.service, env);
  const now = options.now ?? (() => new Date());
  const root = pino(
    {
      level,
      base: {
        service: options.service,
        instance: options.instance ?? `${hostname()}-${process.pid}`,
        pid: process.pid,
      },
      timestamp: () => `,"time":"${now().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
    },
    streamOf(options, env),
  );
  return new PinoLogger(level, root);
}

class PinoLogger implements Logger {
  constructor(
    readonly level: LogLevel,
    private readonly pino: pino.Logger,
  ) {}

  private log(level: Exclude<LogLevel, "silent">, msg: string, fields: LogFields | undefined): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const safe = fields === undefined ? {} : (redactValue(fields) as Record<string, unknown>);
    try {
      this.pino[level](safe, msg);
    } catch (err) {
      this.pino[level]({ logError: String(err) }, msg);
    }
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }
  child(fields: LogFields): Logger {
    return new PinoLogger(this.level, this.pino.child(redactValue(fields) as Record<string, unknown>));
  }
}
