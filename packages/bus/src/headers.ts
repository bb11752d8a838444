/**
 * Message headers: building them from a plain record, reading one, and W3C trace context (`traceparent`,
 * https://www.w3.org/TR/trace-context/) so a trace follows a blob from the fetcher to the stitcher.
 */
import { headers as createHeaders, type MsgHdrs } from "@nats-io/transport-node";

export type { MsgHdrs };

/** Header names of the mesh (docs/mesh.md). */
export const MeshHeader = {
  MsgId: "Nats-Msg-Id",
  Blob: "Ctap-Blob",
  Batch: "Ctap-Batch",
  Eof: "Ctap-Eof",
  /**
   * On a shard's chunk subject, an empty message from the fetchers of a one-shot window: every blob that
   * starts before this record time (ns) has been published (docs/mesh.md, "Watermarks").
   */
  Watermark: "Ctap-Watermark",
  TraceParent: "traceparent",
  TraceState: "tracestate",
} as const;

export function makeHeaders(values: Readonly<Record<string, string>> = {}): MsgHdrs {
  const h = createHeaders();
  for (const [k, v] of Object.entries(values)) h.set(k, v);
  return h;
}

/** The header's first value, or undefined when absent. */
export function getHeader(h: MsgHdrs | undefined, name: string): string | undefined {
  if (!h?.has(name)) return undefined;
  return h.get(name);
}

export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  readonly sampled: boolean;
  readonly traceState?: string;
}

// version 00: "00-<trace-id>-<parent-id>-<flags>"; later versions may append fields after a dash.
const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export function parseTraceParent(value: string): TraceContext | undefined {
  const m = TRACEPARENT_RE.exec(value.trim());
  if (!m || m[1] === "ff") return undefined;
  if (m[1] === "00" && m[5] !== undefined) return undefined;
  if (/^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, sampled: (Number.parseInt(m[4]!, 16) & 1) === 1 };
}

export function formatTraceParent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? "01" : "00"}`;
}

export function setTraceContext(h: MsgHdrs, ctx: TraceContext): void {
  h.set(MeshHeader.TraceParent, formatTraceParent(ctx));
  if (ctx.traceState !== undefined) h.set(MeshHeader.TraceState, ctx.traceState);
}

/** The message's trace context, or undefined when it has none or an invalid one. */
export function getTraceContext(h: MsgHdrs | undefined): TraceContext | undefined {
  const tp = getHeader(h, MeshHeader.TraceParent);
  if (tp === undefined) return undefined;
  const ctx = parseTraceParent(tp);
  if (!ctx) return undefined;
  const ts = getHeader(h, MeshHeader.TraceState);
  return ts === undefined ? ctx : { ...ctx, traceState: ts };
}
