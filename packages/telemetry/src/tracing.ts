/**
 * Tracer and meter of the mesh, and spans that fail the standard way: on an error the exception is recorded,
 * the status set to ERROR with the error's message, `error.type` set to its name (or code), the error
 * rethrown, and the span ended in `finally`. Without a started SDK (`startTelemetry`) these are
 * OpenTelemetry's no-ops: a library traces for free, and only a service's process exports.
 */
import {
  type Attributes,
  type Context,
  context,
  type Link,
  type Meter,
  metrics,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { Attr } from "./registry.js";

export { SpanKind };
export type { Attributes, Context, Link, Span, SpanContext };

export const INSTRUMENTATION_SCOPE = "@cloudtap/telemetry";

export function tracer(): Tracer {
  return trace.getTracer(INSTRUMENTATION_SCOPE);
}

export function meter(): Meter {
  return metrics.getMeter(INSTRUMENTATION_SCOPE);
}

/** The class of a failure: a typed error's code, else its name. */
export function errorType(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && code !== "" ? code : err.name;
  }
  return typeof err;
}

/** Records a failure on a span: the exception event, status ERROR, `error.type`. */
export function recordError(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  span.setAttribute(Attr.ErrorType, errorType(err));
}

/** A handled failure (a quarantined blob, a flow that did not decrypt): status ERROR and `error.type`. */
export function markError(span: Span, type: string, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.setAttribute(Attr.ErrorType, type);
}

export interface SpanOptions {
  readonly attributes?: Attributes;
  readonly kind?: SpanKind;
  readonly links?: readonly Link[];
  /** The parent; default the active context. */
  readonly parent?: Context;
  /** A new trace (links still apply): one trace per blob, whatever was active. */
  readonly root?: boolean;
  readonly startTime?: number;
}

/** Starts a span (not made active). */
export function startSpan(name: string, options: SpanOptions = {}): Span {
  return tracer().startSpan(
    name,
    {
      ...(options.attributes ? { attributes: options.attributes } : {}),
      ...(options.kind === undefined ? {} : { kind: options.kind }),
      ...(options.links ? { links: [...options.links] } : {}),
      ...(options.root ? { root: true } : {}),
      ...(options.startTime === undefined ? {} : { startTime: options.startTime }),
    },
    options.parent ?? context.active(),
  );
}

/**
 * Runs `work` in a new active span; the span ends when `work` settles, with the error recorded the
 * standard way when it throws (the error is rethrown).
 */
export async function withSpan<T>(
  name: string,
  options: SpanOptions,
  work: (span: Span) => Promise<T> | T,
): Promise<T> {
  const span = startSpan(name, options);
  const ctx = trace.setSpan(options.parent ?? context.active(), span);
  try {
    return await context.with(ctx, () => work(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** The context with `span` active, for work started later (`context.with(contextOf(span), ...)`). */
export function contextOf(span: Span, parent: Context = context.active()): Context {
  return trace.setSpan(parent, span);
}

/** A link to a span (a batch that carries many blobs links to each blob's span). */
export function linkTo(span: Span | SpanContext, attributes?: Attributes): Link {
  const ctx = "spanContext" in span ? span.spanContext() : span;
  return attributes ? { context: ctx, attributes } : { context: ctx };
}

/** Runs `fn` with `ctx` active. */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** Whether a span is exported (sampled), so callers skip building attributes nobody reads. */
export function isRecording(span: Span): boolean {
  return span.isRecording();
}
