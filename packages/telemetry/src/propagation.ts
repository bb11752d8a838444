/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) in and out of the two carriers the mesh has:
 * NATS message headers (`MsgHdrs` of @cloudtap/bus: `traceparent`, `tracestate`, the names bus's
 * `MeshHeader` declares) and gRPC metadata (grpc-js `Metadata`), both typed here by the methods used, so this
 * package imports neither transport. The W3C propagator is used directly rather than the global one, so
 * the wire format does not depend on which propagators an SDK registered.
 */
import {
  type Context,
  context,
  ROOT_CONTEXT,
  type SpanContext,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

const w3c = new W3CTraceContextPropagator();

/** What NATS headers offer (`MsgHdrs`): `get` gives "" for a missing header. */
export interface HeaderCarrier {
  get(name: string): string;
  set(name: string, value: string): void;
  has(name: string): boolean;
  keys(): string[];
}

/** What grpc-js `Metadata` offers. */
export interface MetadataCarrier {
  get(key: string): (string | Buffer)[];
  set(key: string, value: string | Buffer): void;
  getMap(): Record<string, unknown>;
}

const headerSetter: TextMapSetter<HeaderCarrier> = { set: (h, k, v) => h.set(k, v) };
const headerGetter: TextMapGetter<HeaderCarrier> = {
  get: (h, k) => (h.has(k) ? h.get(k) : undefined),
  keys: (h) => h.keys(),
};
const metadataSetter: TextMapSetter<MetadataCarrier> = { set: (m, k, v) => m.set(k, v) };
const metadataGetter: TextMapGetter<MetadataCarrier> = {
  get: (m, k) => {
    const v = m.get(k)[0];
    return v === undefined ? undefined : String(v);
  },
  keys: (m) => Object.keys(m.getMap()),
};
const recordSetter: TextMapSetter<Record<string, string>> = {
  set: (r, k, v) => {
    r[k] = v;
  },
};
const recordGetter: TextMapGetter<Readonly<Record<string, string>>> = {
  get: (r, k) => r[k],
  keys: (r) => Object.keys(r),
};

/** Writes the trace context of `ctx` (default: the active one) into NATS headers. */
export function injectHeaders(headers: HeaderCarrier, ctx: Context = context.active()): void {
  w3c.inject(ctx, headers, headerSetter);
}

/** The remote parent a message's headers carry (the root context when they carry none, or a bad one). */
export function extractHeaders(headers: HeaderCarrier | undefined): Context {
  return headers ? w3c.extract(ROOT_CONTEXT, headers, headerGetter) : ROOT_CONTEXT;
}

/** Writes the trace context of `ctx` (default: the active one) into gRPC metadata. */
export function injectMetadata(metadata: MetadataCarrier, ctx: Context = context.active()): void {
  w3c.inject(ctx, metadata, metadataSetter);
}

/** The remote parent a call's metadata carries. */
export function extractMetadata(metadata: MetadataCarrier | undefined): Context {
  return metadata ? w3c.extract(ROOT_CONTEXT, metadata, metadataGetter) : ROOT_CONTEXT;
}

/** The trace context of `ctx` as a plain record (`traceparent`, `tracestate`), e.g. for a protobuf map field. */
export function traceContextRecord(ctx: Context = context.active()): Record<string, string> {
  const out: Record<string, string> = {};
  w3c.inject(ctx, out, recordSetter);
  return out;
}

/** The remote parent of a plain record (see `traceContextRecord`). */
export function contextFromRecord(record: Readonly<Record<string, string>> | undefined): Context {
  return record ? w3c.extract(ROOT_CONTEXT, record, recordGetter) : ROOT_CONTEXT;
}

/** The span context a context carries, when valid (for links to a remote span). */
export function spanContextOf(ctx: Context): SpanContext | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc && trace.isSpanContextValid(sc) ? sc : undefined;
}
