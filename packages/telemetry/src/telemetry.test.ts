import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getTraceContext, makeHeaders, parseTraceParent } from "@cloudtap/bus";
import { createCounters, createLogger } from "@cloudtap/service-kit";
import { Metadata } from "@grpc/grpc-js";
import { SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { bindCounterMetrics } from "./counter-metrics.js";
import { serveMetrics } from "./metrics-server.js";
import {
  contextFromRecord,
  extractHeaders,
  extractMetadata,
  injectHeaders,
  injectMetadata,
  traceContextRecord,
} from "./propagation.js";
import { Attr, METRICS, MetricKind, prometheusName, SpanName } from "./registry.js";
import { shutdownTelemetry, startTelemetry } from "./sdk.js";
import { contextOf, startSpan, withSpan } from "./tracing.js";

const spans = new InMemorySpanExporter();

/** Finished spans, once exported (the simple processor exports after the resource's detectors settle). */
async function finishedSpans(count: number) {
  for (let i = 0; i < 200 && spans.getFinishedSpans().length < count; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return spans.getFinishedSpans();
}

describe("telemetry", () => {
  before(() => {
    startTelemetry({
      serviceName: "telemetry-test",
      env: {},
      spanProcessors: [new SimpleSpanProcessor(spans)],
    });
  });
  after(() => shutdownTelemetry());

  it("telemetry - a failing span records the exception, ERROR status and error.type, and rethrows", async () => {
    spans.reset();
    const err = Object.assign(new Error("blob vanished"), { code: "NOT_FOUND" });
    await assert.rejects(
      withSpan(SpanName.BlobFetch, { attributes: { [Attr.BlobKey]: "data/a.ctap" } }, () => {
        throw err;
      }),
      err,
    );
    const [span] = await finishedSpans(1);
    assert.equal(span?.name, SpanName.BlobFetch);
    assert.equal(span?.status.code, SpanStatusCode.ERROR);
    assert.equal(span?.status.message, "blob vanished");
    assert.equal(span?.attributes[Attr.ErrorType], "NOT_FOUND");
    assert.equal(span?.attributes[Attr.BlobKey], "data/a.ctap");
    assert.equal(span?.events[0]?.name, "exception");
  });

  it("telemetry - trace context over NATS headers (bus reads the same traceparent) and gRPC metadata", async () => {
    const parent = startSpan(SpanName.BlobPublish, { root: true });
    const want = parent.spanContext();
    const headers = makeHeaders({ "Ctap-Blob": "data/a.ctap" });
    injectHeaders(headers, contextOf(parent));
    const viaBus = getTraceContext(headers);
    assert.equal(viaBus?.traceId, want.traceId);
    assert.equal(viaBus?.spanId, want.spanId);
    assert.equal(viaBus?.sampled, true);
    const fromHeaders = trace.getSpanContext(extractHeaders(headers));
    assert.equal(fromHeaders?.traceId, want.traceId);
    assert.equal(fromHeaders?.isRemote, true);

    const md = new Metadata();
    injectMetadata(md, contextOf(parent));
    assert.ok(parseTraceParent(String(md.get("traceparent")[0])));
    assert.equal(trace.getSpanContext(extractMetadata(md))?.spanId, want.spanId);

    const record = traceContextRecord(contextOf(parent));
    assert.equal(trace.getSpanContext(contextFromRecord(record))?.traceId, want.traceId);
    // Nothing carried: a root context, no parent.
    assert.equal(trace.getSpanContext(extractHeaders(makeHeaders({}))), undefined);
    assert.equal(trace.getSpanContext(contextFromRecord({ traceparent: "garbage" })), undefined);
    parent.end();
  });

  it("telemetry - log lines inside a span carry its trace and span ids", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ service: "fetcher", destination: (l) => lines.push(JSON.parse(l)) });
    log.info("outside");
    await withSpan(SpanName.Blob, {}, async (span) => {
      await new Promise((r) => setImmediate(r));
      log.info("inside", { blob: "data/a.ctap" });
      assert.equal(lines[1]?.["trace_id"], span.spanContext().traceId);
      assert.equal(lines[1]?.["span_id"], span.spanContext().spanId);
    });
    assert.equal(lines[0]?.["trace_id"], undefined);
  });

  it("telemetry - counters served on /metrics by their registry names, the same numbers as the status", async () => {
    const counters = createCounters();
    counters.counter("blobs_done").add(3);
    counters.counter("blobs_quarantined", { reason: "too-large" }).add(1);
    counters.gauge("blob_lag_ms").set(2500);
    counters.gauge("jetstream_pending", { consumer: "fetchers-live" }).set(7);
    const unbind = bindCounterMetrics(() => counters.series?.() ?? [], {
      attributes: { [Attr.Run]: "live" },
    });
    const server = await serveMetrics({ host: "127.0.0.1", port: 0 }, "telemetry-test");
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const line = (name: string) => text.split("\n").filter((l) => l.startsWith(`${name}{`));
      assert.match(line("cloudtap_fetcher_blobs_total").join("\n"), /cloudtap_blob_state="done".* 3$/m);
      assert.match(line("cloudtap_fetcher_quarantined_total")[0] ?? "", /cloudtap_reason="too-large".* 1$/);
      assert.match(line("cloudtap_fetcher_lag")[0] ?? "", / 2\.5$/);
      assert.match(line("cloudtap_jetstream_pending")[0] ?? "", /cloudtap_bus_consumer="fetchers-live".* 7$/);
      assert.match(line("cloudtap_fetcher_blobs_total")[0] ?? "", /cloudtap_run="live"/);
      const missing = await fetch(`http://127.0.0.1:${server.port}/other`);
      assert.equal(missing.status, 404);
      await missing.text();
    } finally {
      unbind();
      await server.close();
    }
  });

  it("telemetry - registry: unique names, units, sources; Prometheus names; no secret-looking attribute", () => {
    const names = new Set<string>();
    const sources = new Set<string>();
    for (const m of METRICS) {
      assert.match(m.name, /^cloudtap\.[a-z_.]+$/, m.name);
      assert.ok(!names.has(m.name), `${m.name} declared twice`);
      names.add(m.name);
      assert.ok(m.unit !== "" && m.description !== "" && m.from.length > 0, m.name);
      for (const s of m.from) {
        assert.ok(!sources.has(s.series), `series ${s.series} read by two metrics`);
        sources.add(s.series);
      }
    }
    assert.equal(
      prometheusName(METRICS.find((m) => m.kind === MetricKind.Counter)!),
      "cloudtap_fetcher_blobs_total",
    );
    for (const name of Object.values(Attr)) {
      assert.match(name, /^(cloudtap\.[a-z_.]+|error\.type)$/, name);
      assert.ok(!/secret|password|token|credential|private/.test(name), name);
    }
  });
});
