import { UsageError } from "./usage-error.js";

/**
 * A point in time for --since/--until: an ISO 8601 date-time ("2026-11-25T01:00:00Z"), Unix seconds
 * ("1764032400", "1764032400.5"), or a time relative to now ("-2h", "-30m").
 */
export function parseTime(option: string, text: string, nowMs = Date.now()): bigint {
  const rel = /^-(\d+)(s|m|h|d)$/.exec(text);
  if (rel) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "s" | "m" | "h" | "d"];
    return BigInt(nowMs - Number(rel[1]) * unit) * 1_000_000n;
  }
  if (/^\d+(\.\d+)?$/.test(text)) {
    const [s, frac = ""] = text.split(".");
    return BigInt(s!) * 1_000_000_000n + BigInt((frac + "000000000").slice(0, 9));
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new UsageError(`${option}: "${text}" is not a time (ISO 8601, Unix seconds, or -2h)`);
  return BigInt(ms) * 1_000_000n;
}
