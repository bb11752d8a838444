/**
 * Telemetry of the mesh end to end: the local-process mesh of `cloudtap up --once` (nats-server, fetchers,
 * key-broker, stitchers, mirror-egress, each its own OS process) sends its spans over OTLP/HTTP to a
 * receiver of this test's own, a node:http server on 127.0.0.1 that stands in for the OpenTelemetry
 * collector or Jaeger (neither runs on this machine): it decodes what the services' real OTLP exporters send
 * and keeps it. The test follows the trace edges across the processes (fetcher -> stitcher through the chunk
 * messages' NATS headers, stitcher -> mirror-egress through the mirror batches' trace context, stitcher ->
 * key-broker through gRPC metadata), scrapes every instance's Prometheus endpoint for the registry's
 * metrics with the values the run implies, and checks that no secret of the run's key logs appears in any
 * span attribute or log line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { LocalMesh, MESH_STATE_FILE, type MeshState } from "@cloudtap/local-mesh";
import { METRICS, type MetricDeclaration, prometheusName, SpanName } from "@cloudtap/telemetry";
import { cloudtap } from "./cloudtap-cli.js";

// --- the OTLP/HTTP receiver (JSON encoding, what @opentelemetry/exporter-*-otlp-http sends) ---

type AnyValue = {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value: AnyValue };

interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly links: readonly { traceId: string; spanId: string }[];
  readonly status: number;
}

function anyValue(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  return undefined;
}

function attributes(list: readonly KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Metric names per service that arrived over OTLP. */
  readonly metrics = new Map<string, Set<string>>();
  readonly problems: string[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.body(req).then(
        (body) => {
          try {
            this.accept(req.url ?? "/", req.headers["content-type"] ?? "", body);
            res.writeHead(200, { "content-type": "application/json" });
            res.end("{}");
          } catch (err) {
            this.problems.push(`${req.url}: ${err instanceof Error ? err.message : String(err)}`);
            res.writeHead(400);
            res.end();
          }
        },
        () => {
          res.writeHead(400);
          res.end();
        },
      );
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async body(req: IncomingMessage): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const p of req) parts.push(p as Buffer);
    const raw = Buffer.concat(parts);
    return req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw;
  }

  private accept(url: string, contentType: string, body: Buffer): void {
    if (!contentType.includes("json")) throw new Error(`not OTLP/JSON: ${contentType}`);
    const doc = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    if (url.startsWith("/v1/traces")) {
      for (const rs of (doc["resourceSpans"] ?? []) as Record<string, unknown>[]) {
        const resource = attributes((rs["resource"] as { attributes?: KeyValue[] } | undefined)?.attributes);
        const service = String(resource["service.name"]);
        for (const ss of (rs["scopeSpans"] ?? []) as Record<string, unknown>[])
          for (const s of (ss["spans"] ?? []) as Record<string, unknown>[])
            this.spans.push({
              service,
              traceId: String(s["traceId"]),
              spanId: String(s["spanId"]),
              parentSpanId: String(s["parentSpanId"] ?? ""),
              name: String(s["name"]),
              kind: Number(s["kind"] ?? 0),
              attributes: attributes(s["attributes"] as KeyValue[] | undefined),
              links: ((s["links"] ?? []) as { traceId: string; spanId: string }[]).map((l) => ({
                traceId: String(l.traceId),
                spanId: String(l.spanId),
              })),
              status: Number((s["status"] as { code?: number } | undefined)?.code ?? 0),
            });
      }
    } else if (url.startsWith("/v1/metrics")) {
      for (const rm of (doc["resourceMetrics"] ?? []) as Record<string, unknown>[]) {
        const resource = attributes((rm["resource"] as { attributes?: KeyValue[] } | undefined)?.attributes);
        const service = String(resource["service.name"]);
        const names = this.metrics.get(service) ?? new Set<string>();
        this.metrics.set(service, names);
        for (const sm of (rm["scopeMetrics"] ?? []) as Record<string, unknown>[])
          for (const m of (sm["metrics"] ?? []) as { name: string }[]) names.add(m.name);
      }
    } else throw new Error(`unexpected path ${url}`);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }
}

// --- Prometheus text ---

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const metric = (name: string): MetricDeclaration => {
  const m = METRICS.find((x) => x.name === name);
  assert.ok(m, `${name} is declared in the registry`);
  return m;
};

/** The sum of a registry metric's samples (optionally those with one label's value). */
function total(samples: readonly Sample[], name: string, label?: [string, string]): number | undefined {
  const prom = prometheusName(metric(name));
  const mine = samples.filter((s) => s.name === prom && (!label || s.labels[label[0]] === label[1]));
  return mine.length === 0 ? undefined : mine.reduce((a, s) => a + s.value, 0);
}

/**
 * Per service: the registry metrics this run implies a value above zero for, and those that must be served
 * (present, any value: backlogs that ended empty, drops that did not happen).
 */
const EXPECTED: Record<string, { nonZero: [string, [string, string]?][]; present: string[] }> = {
  fetcher: {
    nonZero: [
      ["cloudtap.fetcher.blobs", ["cloudtap_blob_state", "done"]],
      ["cloudtap.fetcher.blobs", ["cloudtap_blob_state", "listed"]],
      ["cloudtap.fetcher.batches", ["cloudtap_batch_outcome", "published"]],
      ["cloudtap.fetcher.records"],
      ["cloudtap.fetcher.bytes"],
      ["cloudtap.fetcher.eof_markers"],
      ["cloudtap.fetcher.lag"],
    ],
    present: ["cloudtap.jetstream.pending", "cloudtap.jetstream.ack_pending"],
  },
  stitcher: {
    nonZero: [
      ["cloudtap.stitcher.records"],
      ["cloudtap.stitcher.messages_acked"],
      ["cloudtap.stitcher.flows", ["cloudtap_flow_protocol", "tcp"]],
      ["cloudtap.stitcher.packets"],
      ["cloudtap.stitcher.tls.outcomes", ["cloudtap_tls_outcome", "decrypted"]],
      ["cloudtap.stitcher.keys", ["cloudtap_keys_result", "hit"]],
      ["cloudtap.stitcher.mirror.batches"],
      ["cloudtap.stitcher.mirror.frames"],
    ],
    present: [
      "cloudtap.stitcher.gaps",
      "cloudtap.stitcher.gap_bytes",
      "cloudtap.stitcher.duplicates",
      "cloudtap.stitcher.drops",
      "cloudtap.stitcher.late_records",
      "cloudtap.stitcher.flows.open",
      "cloudtap.stitcher.held_messages",
      "cloudtap.jetstream.pending",
      "cloudtap.jetstream.ack_pending",
    ],
  },
  "key-broker": {
    nonZero: [
      // The stitchers wait for keys (WaitForKeys); LookupKeys, counted by lookups and keys, is the CLI's.
      ["cloudtap.keybroker.waits", ["cloudtap_keys_wait_outcome", "started"]],
      ["cloudtap.keybroker.waits", ["cloudtap_keys_wait_outcome", "ready"]],
      ["cloudtap.keybroker.key_logs"],
      ["cloudtap.keybroker.secrets_added"],
      ["cloudtap.keybroker.watcher.polls"],
      ["cloudtap.keybroker.watcher.bytes"],
    ],
    present: [
      "cloudtap.keybroker.lookups",
      "cloudtap.keybroker.keys",
      "cloudtap.keybroker.waiters",
      "cloudtap.keybroker.conflicts",
      "cloudtap.keybroker.lines_skipped",
    ],
  },
  "mirror-egress": {
    nonZero: [
      ["cloudtap.egress.batches"],
      ["cloudtap.egress.frames"],
      ["cloudtap.egress.packets", ["cloudtap_egress_sink_kind", "pcapng"]],
      ["cloudtap.egress.bytes", ["cloudtap_egress_sink_kind", "pcapng"]],
    ],
    present: [],
  },
};

/** Every secret of every key log of a store (the hex of each line's last field). */
function secretsOf(keyDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".keylog"))
        for (const line of readFileSync(p, "utf8").split("\n")) {
          const parts = line.trim().split(/\s+/);
          if (parts.length === 3 && /^[0-9a-f]{32,}$/i.test(parts[2]!)) out.push(parts[2]!.toLowerCase());
        }
    }
  };
  walk(keyDir);
  return out;
}

describe("telemetry - the mesh's traces over OTLP and metrics on every /metrics", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-telemetry-it-"));
  const store = join(dir, "store");
  const keys = join(dir, "keys");
  const receiver = new OtlpReceiver();
  after(async () => {
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  before(async () => {
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--keys-out",
      keys,
      "--connections",
      "24",
      "--seed",
      "5",
      "--blob-size",
      "24KiB",
      "--json",
    );
    assert.equal(sim.status, 0, sim.stderr);
    await receiver.start();
  });

  it("telemetry - trace edges fetcher -> stitcher -> mirror-egress and stitcher -> key-broker; registry metrics on every service; no secret", async () => {
    const stateDir = join(dir, "state");
    const meshFile = join(dir, "mesh.pcapng");
    const mesh = new LocalMesh({
      stateDir,
      source: store,
      keys,
      once: true,
      fetchers: 2,
      stitchers: 2,
      shardCount: 4,
      variant: "both",
      outputs: { pcapng: [meshFile] },
      otlpEndpoint: receiver.endpoint,
      env: {
        // Every flow traced (sampled per flow otherwise), spans and OTLP metrics sent soon.
        STITCHER_FLOW_TRACE_RATIO: "1",
        OTEL_BSP_SCHEDULE_DELAY: "500",
        OTEL_METRIC_EXPORT_INTERVAL: "2000",
      },
    });
    const scraped = new Map<string, Sample[]>();
    let state: MeshState;
    try {
      await mesh.start();
      await mesh.waitUntilDone();
      state = mesh.state;
      // mesh.json lists each service instance's scrape URL.
      const file = JSON.parse(readFileSync(join(stateDir, MESH_STATE_FILE), "utf8")) as MeshState;
      assert.equal(file.otlpEndpoint, receiver.endpoint);
      const services = state.instances.filter((i) => i.service !== "nats-server");
      assert.equal(services.length, 6);
      for (const i of services) {
        assert.match(i.metrics ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, `${i.name} has a metrics URL`);
        assert.equal(file.instances.find((x) => x.name === i.name)?.metrics, i.metrics);
      }
      // Gauges are refreshed every few seconds: scrape until every expectation holds (or say which does not).
      const deadline = Date.now() + 90_000;
      for (;;) {
        const unmet: string[] = [];
        for (const i of services) {
          const res = await fetch(i.metrics!);
          assert.equal(res.status, 200, `${i.name} /metrics`);
          assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
          const samples = parsePrometheus(await res.text());
          scraped.set(i.name, samples);
          const want = EXPECTED[i.service]!;
          for (const [name, label] of want.nonZero)
            if (!((total(samples, name, label) ?? 0) > 0))
              unmet.push(`${i.name} ${name}${label ? `{${label.join("=")}}` : ""} > 0`);
          for (const name of want.present)
            if (total(samples, name) === undefined) unmet.push(`${i.name} serves ${name}`);
          // The per-sink numbers are the egress report's: once the merge has written everything, the pcapng
          // sink's packets are the frames mirror-egress replayed (the sink gauges follow every 2 s).
          if (i.service === "mirror-egress") {
            const sink = total(samples, "cloudtap.egress.packets", ["cloudtap_egress_sink_kind", "pcapng"]);
            const frames = total(samples, "cloudtap.egress.frames");
            if (sink !== frames) unmet.push(`mirror-egress pcapng sink packets ${sink} = frames ${frames}`);
          }
        }
        if (unmet.length === 0) break;
        assert.ok(Date.now() < deadline, `metrics not served as the run implies: ${unmet.join("; ")}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      // Stopping flushes every service's spans and metrics (the SDK's shutdown is its last step).
      await mesh.stop();
    }

    // Only names of the registry are served under cloudtap_ (nothing undeclared leaks out).
    const declared = new Set(METRICS.map(prometheusName));
    for (const [name, samples] of scraped)
      for (const s of samples)
        if (s.name.startsWith("cloudtap_"))
          assert.ok(declared.has(s.name), `${name} serves ${s.name}, which the registry does not declare`);
    const servedBy = (service: string) =>
      [...new Set((scraped.get(service) ?? []).map((s) => s.name))].filter((n) => n.startsWith("cloudtap_"));
    process.stdout.write(
      `# metrics served: ${[...scraped.keys()].map((n) => `${n} ${servedBy(n).length}`).join(", ")} (of ${METRICS.length} declared)\n`,
    );

    // --- traces ---
    assert.deepEqual(receiver.problems, []);
    const spans = receiver.spans;
    const byId = new Map(spans.map((s) => [`${s.traceId}/${s.spanId}`, s]));
    const parentOf = (s: ReceivedSpan) => byId.get(`${s.traceId}/${s.parentSpanId}`);
    const named = (name: string) => spans.filter((s) => s.name === name);
    const counts = Object.fromEntries(
      Object.values(SpanName).map((n) => [n, named(n).length] as const),
    ) as Record<string, number>;
    process.stdout.write(
      `# spans: ${spans.length} (${Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")})\n`,
    );
    for (const s of spans) assert.ok(s.traceId.length === 32 && s.spanId.length === 16, "hex ids");

    // Fetcher: one trace per blob, fetch/decode/publish its children.
    const blobs = named(SpanName.Blob);
    const blobFiles = readdirSync(join(store, "data"), { recursive: true }).filter((f) =>
      String(f).endsWith(".ctap"),
    );
    assert.equal(blobs.length, blobFiles.length, "one blob span per blob");
    assert.equal(new Set(blobs.map((b) => b.traceId)).size, blobs.length, "one trace per blob");
    for (const b of blobs) assert.equal(b.service, "fetcher");
    for (const name of [SpanName.BlobFetch, SpanName.BlobDecode, SpanName.BlobPublish])
      for (const s of named(name))
        assert.equal(parentOf(s)?.name, SpanName.Blob, `${name} is a blob's child`);
    // Each blob's root links to the listing that found it.
    const listings = new Set(named(SpanName.BlobList).map((s) => `${s.traceId}/${s.spanId}`));
    assert.ok(listings.size > 0);
    for (const b of blobs)
      assert.ok(
        b.links.some((l) => listings.has(`${l.traceId}/${l.spanId}`)),
        "a blob's trace links to its listing",
      );

    // fetcher -> stitcher: every consume is the child (across processes, over NATS headers) of a publish.
    const consumes = named(SpanName.BatchConsume);
    assert.ok(consumes.length > 0);
    for (const c of consumes) {
      assert.equal(c.service, "stitcher");
      const p = parentOf(c);
      assert.equal(p?.name, SpanName.BlobPublish, "a consume's parent is the fetcher's publish");
      assert.equal(p?.service, "fetcher");
    }
    const consumeIds = new Set(consumes.map((c) => `${c.traceId}/${c.spanId}`));
    // Every blob's trace reached a stitcher.
    const consumedTraces = new Set(consumes.map((c) => c.traceId));
    for (const b of blobs)
      assert.ok(consumedTraces.has(b.traceId), `blob ${b.attributes["cloudtap.blob.key"]} consumed`);

    // stitcher -> mirror-egress: each mirror send links to the consumes it carries; each egress batch is the
    // child of a mirror send (the batch's trace context over gRPC), each sink write a batch's descendant.
    const sends = named(SpanName.MirrorSend);
    assert.ok(sends.length > 0);
    for (const s of sends) assert.equal(s.service, "stitcher");
    const linked = sends.filter((s) => s.links.some((l) => consumeIds.has(`${l.traceId}/${l.spanId}`)));
    assert.ok(linked.length > 0, "mirror sends link to the consumes of the messages they carry");
    const batches = named(SpanName.EgressBatch);
    assert.ok(batches.length > 0);
    for (const b of batches) {
      assert.equal(b.service, "mirror-egress");
      assert.equal(parentOf(b)?.name, SpanName.MirrorSend, "an egress batch's parent is the stitcher's send");
    }
    const writes = named(SpanName.EgressWrite);
    assert.ok(writes.length > 0);
    for (const w of writes) assert.equal(w.service, "mirror-egress");
    // One blob followed end to end: its publish -> a consume -> linked from a send -> an egress batch.
    const sentTo = new Set(batches.map((b) => `${b.traceId}/${b.parentSpanId}`));
    const followed = blobs.filter((blob) =>
      consumes.some(
        (c) =>
          c.traceId === blob.traceId &&
          sends.some(
            (s) =>
              s.links.some((l) => l.traceId === c.traceId && l.spanId === c.spanId) &&
              sentTo.has(`${s.traceId}/${s.spanId}`),
          ),
      ),
    );
    process.stdout.write(
      `# blobs followed fetcher -> stitcher -> mirror-egress: ${followed.length} of ${blobs.length}\n`,
    );
    assert.ok(followed.length > 0, "a blob's trace reaches mirror-egress through the span links");

    // stitcher -> key-broker: every key-broker span is the server side of a stitcher's key lookup.
    const lookups = named(SpanName.KeyLookup);
    const served = [...named(SpanName.KeyWait), ...named(SpanName.KeyBrokerLookup)];
    assert.ok(lookups.length > 0 && served.length > 0, "key lookups were traced on both sides");
    for (const k of served) {
      assert.equal(k.service, "key-broker");
      const p = parentOf(k);
      assert.equal(p?.name, SpanName.KeyLookup, "a key-broker span's parent is the stitcher's lookup");
      assert.equal(p?.service, "stitcher");
      assert.equal(k.kind, 2, "server span");
      assert.equal(p?.kind, 3, "client span");
    }
    // A lookup runs inside the consume of the message that needed the keys: in the blob's own trace.
    const inBlobTrace = lookups.filter((l) => consumedTraces.has(l.traceId));
    assert.ok(inBlobTrace.length > 0, "key lookups sit in the blobs' traces");
    // Decrypt spans (every flow traced here) say the TLS version and outcome.
    const decrypts = named(SpanName.FlowDecrypt);
    assert.ok(decrypts.length > 0);
    const decrypted = decrypts.filter((d) => d.attributes["cloudtap.tls.outcome"] === "decrypted");
    assert.ok(decrypted.length > 0);
    for (const d of decrypted) {
      assert.match(
        String(d.attributes["cloudtap.tls.version"]),
        /TLS|1\.[23]/,
        "a decrypted flow's TLS version",
      );
      assert.equal(typeof d.attributes["cloudtap.tls.suite"], "string");
    }
    for (const d of decrypts) assert.equal(parentOf(d)?.name, SpanName.FlowStitch, "decrypt inside its flow");

    // Metrics also went out over OTLP, by the registry's names.
    for (const service of ["fetcher", "stitcher", "key-broker", "mirror-egress"]) {
      const names = receiver.metrics.get(service);
      assert.ok(names && names.size > 0, `${service} exported metrics over OTLP`);
      for (const n of names) if (n.startsWith("cloudtap.")) assert.ok(metric(n));
    }

    // No secret of the run's key logs in any span attribute or any log line.
    const secrets = secretsOf(keys);
    assert.ok(secrets.length > 5);
    const spanText = JSON.stringify(spans.map((s) => s.attributes)).toLowerCase();
    for (const secret of secrets) assert.ok(!spanText.includes(secret), "a secret in a span attribute");
    const logDir = join(stateDir, "logs");
    for (const name of readdirSync(logDir)) {
      const text = readFileSync(join(logDir, name), "utf8").toLowerCase();
      for (const secret of secrets) assert.ok(!text.includes(secret), `a secret in ${name}`);
    }
  });
});
