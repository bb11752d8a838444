/**
 * Parsers for configuration values. Each takes the raw text (environment values are text; YAML scalars are
 * turned into text first) and returns the value or throws an Error whose message says what was expected;
 * `loadConfig` turns that into a ConfigError naming the variable.
 */

export type ValueParser<T> = (raw: string) => T;

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Text, trimmed; empty text is refused (an unset variable is the way to say "none"). */
export const parseString: ValueParser<string> = (raw) => {
  const s = raw.trim();
  if (s === "") throw new Error("must not be empty");
  return s;
};

function checkPort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new Error(`port "${text}" is not a number`);
  const port = Number(text);
  if (port > 65535) throw new Error(`port ${port} is above 65535`);
  return port;
}

/** `host:port`, `[v6]:port` or `:port` (host defaults to 0.0.0.0, for listen addresses). Port 0 is allowed. */
export const parseHostPort: ValueParser<HostPort> = (raw) => {
  const s = raw.trim();
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(s);
  if (v6) return { host: v6[1]!, port: checkPort(v6[2]!) };
  const at = s.lastIndexOf(":");
  if (at < 0) throw new Error("expected host:port");
  const host = s.slice(0, at);
  if (host.includes(":")) throw new Error("an IPv6 host must be written in brackets: [::1]:port");
  if (host !== "" && !/^[A-Za-z0-9._-]+$/.test(host))
    throw new Error(`"${host}" is not a host name or address`);
  return { host: host === "" ? "0.0.0.0" : host, port: checkPort(s.slice(at + 1)) };
};

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * A duration in milliseconds: one or more `<number><unit>` parts with units ms, s, m, h, d ("30s", "5m",
 * "1h30m", "250ms"); a bare number is milliseconds.
 */
export const parseDurationMs: ValueParser<number> = (raw) => {
  const s = raw.trim();
  if (/^\d+$/.test(s)) return Number(s);
  // Parts like "1h", "30m", "1.5s"; the whole text must be made of them.
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) {
    throw new Error('expected a duration such as "250ms", "30s", "5m", "1h30m"');
  }
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
  return Math.round(ms);
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** A size in bytes: "1MiB", "512KiB", "10GB", "4096"; binary (KiB) and decimal (KB) units, any case. */
export const parseSize: ValueParser<number> = (raw) => {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(raw.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? "").toLowerCase() || "b"];
  if (!m || unit === undefined) throw new Error('expected a size such as "4096", "512KiB", "1MiB", "10GB"');
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(Math.round(bytes))) throw new Error("size is too large");
  return Math.round(bytes);
};

/** An integer parser with an inclusive range. */
export function integer(range: { min?: number; max?: number } = {}): ValueParser<number> {
  return (raw) => {
    const s = raw.trim();
    if (!/^-?\d+$/.test(s)) throw new Error("expected an integer");
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new Error("integer is too large");
    if (range.min !== undefined && n < range.min) throw new Error(`must be at least ${range.min}`);
    if (range.max !== undefined && n > range.max) throw new Error(`must be at most ${range.max}`);
    return n;
  };
}

export interface IntegerRange {
  readonly first: number;
  readonly last: number;
}

/** An inclusive integer range "0-7", or one number "3" (first = last). */
export const parseIntegerRange: ValueParser<IntegerRange> = (raw) => {
  const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(raw.trim());
  if (!m) throw new Error('expected a range such as "0-7" or a single number');
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (last < first) throw new Error(`range end ${last} is below its start ${first}`);
  return { first, last };
};

/** true/false, 1/0, yes/no, on/off (any case). */
export const parseBoolean: ValueParser<boolean> = (raw) => {
  const s = raw.trim().toLowerCase();
  if (s === "true" || s === "1" || s === "yes" || s === "on") return true;
  if (s === "false" || s === "0" || s === "no" || s === "off") return false;
  throw new Error("expected true or false");
};

/** A key given in hex, of exactly `bytes` bytes (e.g. 32 for AES-256). */
export function hexKey(bytes: number): ValueParser<Uint8Array> {
  return (raw) => {
    const s = raw.trim();
    if (!/^[0-9A-Fa-f]*$/.test(s) || s.length % 2 !== 0) throw new Error("expected hex digits");
    if (s.length !== bytes * 2) throw new Error(`expected ${bytes} bytes (${bytes * 2} hex digits)`);
    return Uint8Array.from(Buffer.from(s, "hex"));
  };
}

/** One of a fixed set of words. */
export function oneOf<const T extends string>(values: readonly T[]): ValueParser<T> {
  return (raw) => {
    const s = raw.trim();
    if (!(values as readonly string[]).includes(s)) throw new Error(`expected one of ${values.join(", ")}`);
    return s as T;
  };
}

/** A comma-separated list, each item parsed by `item`; empty items are refused. */
export function listOf<T>(item: ValueParser<T>): ValueParser<T[]> {
  return (raw) =>
    raw.split(",").map((part, i) => {
      try {
        return item(part);
      } catch (err) {
        throw new Error(`item ${i + 1}: ${(err as Error).message}`);
      }
    });
}

/**
 * A point in time as Unix nanoseconds: an ISO 8601 date-time with a zone ("2025-03-14T09:00:00Z") or an
 * integer count of nanoseconds since the epoch.
 */
export const parseTimestampNs: ValueParser<bigint> = (raw) => {
  const s = raw.trim();
  if (/^\d+$/.test(s)) return BigInt(s);
  // An explicit zone is required: a date-time without one would be read in the machine's local time.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(s)) {
    throw new Error('expected an ISO 8601 time with zone ("2025-03-14T09:00:00Z") or Unix nanoseconds');
  }
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new Error("not a valid date");
  const fraction = /\.(\d+)/.exec(s)?.[1] ?? "";
  const subMsNs = BigInt((fraction.slice(3, 9) || "0").padEnd(6, "0"));
  return BigInt(ms) * 1_000_000n + subMsNs;
};
