/** Renders an inventory for a terminal. */
import type { InventoryReport } from "./inventory.js";

function nsToIso(ns: string): string {
  return new Date(Number(BigInt(ns) / 1_000_000n)).toISOString();
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * Characters that would act on a terminal instead of being shown (C0 and C1 controls, DEL, line separators
 * and bidirectional overrides), from attribute values, object keys or tapper ids: printed as escapes.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `s` with every character that could drive a terminal escaped (`\n`, `\x1b`, `\u202e`). */
export function escapeForTerminal(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return (
      NAMED_ESCAPES[c] ??
      (code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`)
    );
  });
}

export interface FormatOptions {
  /** List every connection and blob, not only the totals. */
  readonly verbose?: boolean;
  /** At most this many problems are listed (all are counted). Default 20. */
  readonly maxProblems?: number;
}

export function formatInventory(r: InventoryReport, options: FormatOptions = {}): string {
  const out: string[] = [];
  const maxProblems = options.maxProblems ?? 20;
  out.push(`blobs:        ${r.blobs} (${bytes(r.blobBytes)}), tappers: ${r.tappers.join(", ") || "-"}`);
  if (r.blobs === 1 && r.blobList[0]?.header) {
    const h = r.blobList[0].header;
    out.push(
      `header:       CTAP ${h.version}, tapper ${h.tapperId}, sequence ${h.sequence}, compression ${h.compression}, start ${nsToIso(h.startNs)}${h.endNs ? `, end ${nsToIso(h.endNs)}` : ""}`,
    );
  }
  if (r.timeRange)
    out.push(`time:         ${nsToIso(r.timeRange.firstNs)} .. ${nsToIso(r.timeRange.lastNs)}`);
  const rc = r.records;
  out.push(
    `records:      conn-open ${rc.connOpen}, data ${rc.data}, datagram ${rc.datagram}, conn-close ${rc.connClose}, unknown ${rc.unknown}`,
  );
  out.push(`payload:      ${bytes(r.payloadBytes)}`);
  const c = r.connections;
  out.push(
    `connections:  ${c.total} (tcp ${c.tcp}, udp ${c.udp}; closed ${c.closed}, mid-stream ${c.midstream}, with gaps ${c.withGaps})`,
  );
  if (r.keyLogs) {
    const k = r.keyLogs;
    const labels = Object.entries(k.byLabel)
      .map(([l, n]) => `${l} ${n}`)
      .join(", ");
    out.push(
      `key logs:     ${k.objects} object(s), ${k.lines} lines for ${k.clientRandoms} client randoms (${labels})`,
    );
  }
  if (options.verbose) {
    out.push("", "connections:");
    for (const conn of r.connectionList) {
      const who = conn.attributes?.["user"] ? ` user=${conn.attributes["user"]}` : "";
      const app = conn.attributes?.["app"] ? ` app=${conn.attributes["app"]}` : "";
      const dir = (d: typeof conn.c2s) =>
        `${d.bytes}B in ${d.ranges.map(([s, e]) => `[${s},${e})`).join("")}${d.duplicateBytes ? ` dup ${d.duplicateBytes}B` : ""}`;
      out.push(
        `  ${conn.connId} ${conn.transport} ${conn.client ?? "?"} -> ${conn.server ?? "?"}${who}${app} ` +
          `c2s ${dir(conn.c2s)} s2c ${dir(conn.s2c)}${conn.close ? ` close=${conn.close.reason}/${conn.close.initiator}` : ""}`,
      );
    }
    out.push("", "blobs:");
    for (const b of r.blobList) {
      out.push(
        `  ${b.key} ${bytes(b.bytes)} seq=${b.header?.sequence ?? "?"} records=${b.records.connOpen + b.records.data + b.records.datagram + b.records.connClose}${b.complete ? "" : " INCOMPLETE"}`,
      );
    }
  }
  const kinds = Object.entries(r.problemCounts);
  if (kinds.length === 0) {
    out.push("problems:     none");
  } else {
    out.push(`problems:     ${r.problems.length} (${kinds.map(([k, n]) => `${k} ${n}`).join(", ")})`);
    for (const p of r.problems.slice(0, maxProblems)) out.push(`  ${p.kind}: ${p.where}: ${p.message}`);
    if (r.problems.length > maxProblems)
      out.push(`  ... ${r.problems.length - maxProblems} more (--json lists all)`);
  }
  // Every line is escaped: none holds a control character of its own, so what is left came from the data.
  return out.map(escapeForTerminal).join("\n");
}
