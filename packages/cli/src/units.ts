import { UsageError } from "./usage-error.js";

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** "4MiB", "512k", "1000000" -> bytes. */
export function parseSize(option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = SIZE_UNITS[m?.[2]?.toLowerCase() ?? "x"];
  if (!m || unit === undefined)
    throw new UsageError(`${option}: "${text}" is not a size (e.g. 4MiB, 512k, 1000000)`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${option}: "${text}" is out of range`);
  return n;
}

const TIME_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

/** "30s", "5m", "250ms" -> nanoseconds. A bare number is seconds. */
export function parseDuration(option: string, text: string): bigint {
  const m = /^(\d+)\s*(ns|us|ms|s|m|h)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${option}: "${text}" is not a duration (e.g. 30s, 5m, 250ms)`);
  return BigInt(m[1]!) * TIME_UNITS[(m[2] ?? "s").toLowerCase()]!;
}

/** "key=value" pairs -> a record. */
export function parseAttributes(option: string, pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq < 1) throw new UsageError(`${option}: "${p}" is not key=value`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** JSON.stringify that writes bigints as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2);
}
