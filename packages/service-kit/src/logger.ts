/**
 * JSON-lines logging: one object per line with `time`, `level`, `service`, `instance`, `pid`, `msg`, then the
 * fields of the logger (`child`) and of the call. Everything logged goes through `redactValue`, so a config
 * object or an error with a credential in it prints `[redacted]` in its place. Written to stderr by default,
 * or appended to a file; writes are synchronous so a line is never lost when the process exits right after.
 */
import { appendFileSync } from "node:fs";
import { hostname } from "node:os";
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
  /** Default: stderr. A string is a file path, appended to. */
  readonly destination?: LogDestination | string;
  /** Read for the level; default `process.env`. */
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

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? logLevelFromEnv(options.service, options.env ?? process.env);
  const dest = options.destination;
  const write: LogDestination =
    typeof dest === "function"
      ? dest
      : typeof dest === "string"
        ? (line) => appendFileSync(dest, line)
        : (line) => process.stderr.write(line);
  const base = {
    service: options.service,
    instance: options.instance ?? `${hostname()}-${process.pid}`,
    pid: process.pid,
  };
  return new JsonLogger(level, write, options.now ?? (() => new Date()), base, {});
}

class JsonLogger implements Logger {
  private readonly rank: number;
  constructor(
    readonly level: LogLevel,
    private readonly write: LogDestination,
    private readonly now: () => Date,
    private readonly base: LogFields,
    private readonly fields: LogFields,
  ) {
    this.rank = RANK[level];
  }

  private log(level: Exclude<LogLevel, "silent">, msg: string, fields: LogFields | undefined): void {
    if (RANK[level] < this.rank) return;
    const line = {
      time: this.now().toISOString(),
      level,
      ...this.base,
      msg,
      ...(redactValue({ ...this.fields, ...fields }) as Record<string, unknown>),
    };
    let text: string;
    try {
      text = JSON.stringify(line);
    } catch (err) {
      text = JSON.stringify({ ...this.base, time: line.time, level, msg, logError: String(err) });
    }
    this.write(`${text}\n`);
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
    return new JsonLogger(this.level, this.write, this.now, this.base, { ...this.fields, ...fields });
  }
}
