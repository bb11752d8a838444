/**
 * A service's configuration, declared once per field and loaded at start:
 *
 *   const spec = {
 *     pollMs: { env: "FETCHER_POLL", parse: parseDurationMs, default: 30_000, doc: "listing interval" },
 *     natsUrl: { env: "FETCHER_NATS_URL", parse: parseString, doc: "NATS server URL" },
 *   } satisfies ConfigSpec;
 *   const config = loadConfig("fetcher", spec); // config.values.pollMs: number
 *
 * Sources, strongest first: the environment (`<SERVICE>_<NAME>`, peers `<PEER>_ADDR`), then the optional YAML
 * file named by `<SERVICE>_CONFIG`, then the field's default. A YAML key is the variable's name in lower case
 * without the `<SERVICE>_` prefix (`FETCHER_POLL` -> `poll`, `KEYBROKER_ADDR` -> `keybroker_addr`), so the
 * file reads like the environment it stands for. Every field is parsed at load; all problems are reported in
 * one ConfigError that names each variable. Secrets never appear in an error or in `redacted()`.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { ValueParser } from "./config-parsers.js";
import { ConfigError, ConfigFileError, type ConfigProblem } from "./errors.js";
import { REDACTED_TEXT } from "./redact.js";

export interface ConfigField<T> {
  /** The environment variable's full name, e.g. `FETCHER_POLL`. */
  readonly env: string;
  readonly parse: ValueParser<T>;
  /** Used when neither the environment nor the file sets the variable. */
  readonly default?: T;
  /** Without a default, a field is required unless it is optional (its value is then `undefined`). */
  readonly optional?: boolean;
  /** Never shown: `redacted()` and errors print `[redacted]`. */
  readonly secret?: boolean;
  /** One line for the service README's table and `--help`-like listings. */
  readonly doc: string;
}

// biome-ignore lint/suspicious/noExplicitAny: a spec mixes fields of different value types.
export type ConfigSpec = Readonly<Record<string, ConfigField<any>>>;

type FieldValue<F> =
  F extends ConfigField<infer T>
    ? F extends { readonly default: unknown }
      ? T
      : F extends { readonly optional: true }
        ? T | undefined
        : T
    : never;

export type ConfigValues<S extends ConfigSpec> = { readonly [K in keyof S]: FieldValue<S[K]> };

export const ConfigSource = { Env: "env", File: "file", Default: "default", Unset: "unset" } as const;
export type ConfigSource = (typeof ConfigSource)[keyof typeof ConfigSource];

export interface LoadedConfig<S extends ConfigSpec> {
  readonly values: ConfigValues<S>;
  /** Where each field's value came from. */
  readonly sources: { readonly [K in keyof S]: ConfigSource };
  /** The YAML file read, if any. */
  readonly file?: string;
  /** Variable name -> display text of the effective value, secrets as `[redacted]`: log it once at start. */
  redacted(): Record<string, string>;
}

export interface LoadConfigOptions {
  /** Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** `<SERVICE>` in variable names: upper case, `-` as `_` ("key-broker" -> "KEY_BROKER"). */
export function envPrefix(service: string): string {
  return service.toUpperCase().replace(/[^A-Z0-9]+/g, "_");
}

/** The YAML key standing for a variable (see the file comment). */
export function yamlKey(service: string, env: string): string {
  const prefix = `${envPrefix(service)}_`;
  return (env.startsWith(prefix) ? env.slice(prefix.length) : env).toLowerCase();
}

function readConfigFile(variable: string, file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigFileError(variable, file, "cannot be read", { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigFileError(variable, file, `is not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigFileError(variable, file, "must be a mapping of names to values");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc)) {
    if (v === null || v === undefined) continue;
    if (typeof v === "object") {
      throw new ConfigFileError(variable, file, `"${k}" must be a single value, not a list or mapping`);
    }
    out[k.toLowerCase()] = String(v);
  }
  return out;
}

function display(value: unknown): string {
  if (value === undefined) return "";
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "object" && value !== null) {
    if ("host" in value && "port" in value) return `${String(value.host)}:${String(value.port)}`;
    return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  }
  return String(value);
}

export function loadConfig<S extends ConfigSpec>(
  service: string,
  spec: S,
  options: LoadConfigOptions = {},
): LoadedConfig<S> {
  const env = options.env ?? process.env;
  const fileVariable = `${envPrefix(service)}_CONFIG`;
  const file = env[fileVariable]?.trim() || undefined;
  const fromFile = file === undefined ? {} : readConfigFile(fileVariable, file);

  const known = new Set(Object.values(spec).map((f) => yamlKey(service, f.env)));
  const problems: ConfigProblem[] = [];
  for (const k of Object.keys(fromFile)) {
    if (!known.has(k)) problems.push({ variable: fileVariable, problem: `unknown key "${k}" in ${file}` });
  }

  const values: Record<string, unknown> = {};
  const sources: Record<string, ConfigSource> = {};
  for (const [name, field] of Object.entries(spec)) {
    const envValue = env[field.env];
    const fileValue = fromFile[yamlKey(service, field.env)];
    let raw: string | undefined;
    if (envValue !== undefined && envValue !== "") {
      raw = envValue;
      sources[name] = ConfigSource.Env;
    } else if (fileValue !== undefined) {
      raw = fileValue;
      sources[name] = ConfigSource.File;
    }
    if (raw === undefined) {
      if ("default" in field) {
        values[name] = field.default;
        sources[name] = ConfigSource.Default;
      } else if (field.optional) {
        values[name] = undefined;
        sources[name] = ConfigSource.Unset;
      } else {
        problems.push({ variable: field.env, problem: `is required: ${field.doc}` });
      }
      continue;
    }
    try {
      values[name] = field.parse(raw);
    } catch (err) {
      const problem = err instanceof Error ? err.message : String(err);
      problems.push(
        field.secret ? { variable: field.env, problem } : { variable: field.env, problem, value: raw },
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const loaded: LoadedConfig<S> = {
    values: values as ConfigValues<S>,
    sources: sources as { [K in keyof S]: ConfigSource },
    redacted() {
      const out: Record<string, string> = {};
      for (const [name, field] of Object.entries(spec)) {
        const v = values[name];
        out[field.env] = field.secret && v !== undefined ? REDACTED_TEXT : display(v);
      }
      return out;
    },
  };
  return file === undefined ? loaded : { ...loaded, file };
}

/** A Markdown table of the spec's variables (for a service README). */
export function describeConfig(spec: ConfigSpec): string {
  const rows = Object.values(spec).map((f) => {
    const def = "default" in f ? `\`${display(f.default)}\`` : f.optional ? "(unset)" : "**required**";
    return `| \`${f.env}\` | ${f.secret ? "secret" : def} | ${f.doc} |`;
  });
  return ["| variable | default | meaning |", "| --- | --- | --- |", ...rows].join("\n");
}
