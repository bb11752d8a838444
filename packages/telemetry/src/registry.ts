/**
 * The telemetry registry: every span name, attribute name and metric of the mesh, declared once. Code names
 * spans and attributes through these constants, never as string literals, and a metric is exported only
 * when it is declared here (`METRICS`): each one says which series of a service's `CounterRegistry` (the
 * numbers `cloudtap status` shows) it reads, so the status RPC and the metrics always agree.
 *
 * Attribute values never hold a secret: key material, sealing keys and credentials have no attribute, and
 * `registry.test.ts` checks that no attribute name would be taken for a credential by the log redaction.
 */

/** Span attributes and metric attributes (`cloudtap.<area>.<field>`). */
export const Attr = {
  Run: "cloudtap.run",
  Shard: "cloudtap.shard",
  BlobKey: "cloudtap.blob.key",
  BlobBytes: "cloudtap.blob.bytes",
  BlobRecords: "cloudtap.blob.records",
  BlobBatches: "cloudtap.blob.batches",
  BlobProblems: "cloudtap.blob.problems",
  /** listed, enqueued, skipped, done, damaged, retried */
  BlobState: "cloudtap.blob.state",
  BlobsListed: "cloudtap.list.blobs",
  ListMode: "cloudtap.list.mode",
  BatchIndex: "cloudtap.batch.index",
  BatchRecords: "cloudtap.batch.records",
  BatchBytes: "cloudtap.batch.bytes",
  /** published, duplicate */
  BatchOutcome: "cloudtap.batch.outcome",
  MessageSeq: "cloudtap.bus.message.seq",
  Consumer: "cloudtap.bus.consumer",
  Stream: "cloudtap.bus.stream",
  FlowId: "cloudtap.flow.id",
  /** tcp, udp */
  FlowProtocol: "cloudtap.flow.protocol",
  FlowPackets: "cloudtap.flow.packets",
  FlowCompletion: "cloudtap.flow.completion",
  FlowGaps: "cloudtap.flow.gaps",
  TlsVersion: "cloudtap.tls.version",
  TlsSuite: "cloudtap.tls.suite",
  TlsOutcome: "cloudtap.tls.outcome",
  TlsServerName: "cloudtap.tls.server_name",
  Variant: "cloudtap.variant",
  KeysWanted: "cloudtap.keys.wanted",
  KeysFound: "cloudtap.keys.found",
  KeysMissing: "cloudtap.keys.missing",
  KeysWaitMs: "cloudtap.keys.wait_ms",
  /** hit, miss, error */
  KeysResult: "cloudtap.keys.result",
  /** started, ready, partial, overflow */
  KeysWaitOutcome: "cloudtap.keys.wait_outcome",
  MirrorStitcher: "cloudtap.mirror.stitcher",
  MirrorSeq: "cloudtap.mirror.batch.seq",
  MirrorBytes: "cloudtap.mirror.batch.bytes",
  MirrorFrames: "cloudtap.mirror.batch.frames",
  MirrorLinksDropped: "cloudtap.mirror.batch.links_dropped",
  EgressSink: "cloudtap.egress.sink",
  EgressSinkKind: "cloudtap.egress.sink_kind",
  EgressChunks: "cloudtap.egress.chunks",
  EgressChunkBytes: "cloudtap.egress.chunk_bytes",
  /** Why something was dropped or quarantined. */
  Reason: "cloudtap.reason",
  ProblemKind: "cloudtap.problem.kind",
  /** The OpenTelemetry semantic convention for a failure's class. */
  ErrorType: "error.type",
} as const;
export type AttrName = (typeof Attr)[keyof typeof Attr];

/** Span names: `<stage> <operation>`, low cardinality (a blob's key is an attribute, never in the name). */
export const SpanName = {
  BlobList: "fetcher list",
  Blob: "fetcher blob",
  BlobFetch: "fetcher fetch",
  BlobDecode: "fetcher decode",
  BlobPublish: "fetcher publish",
  BatchConsume: "stitcher consume",
  FlowStitch: "stitcher flow",
  FlowDecrypt: "stitcher decrypt",
  KeyLookup: "stitcher key lookup",
  EndOfWindow: "stitcher end of window",
  MirrorSend: "stitcher mirror send",
  KeyWait: "key-broker wait",
  KeyBrokerLookup: "key-broker lookup",
  EgressBatch: "mirror-egress batch",
  EgressWrite: "mirror-egress write",
} as const;
export type SpanName = (typeof SpanName)[keyof typeof SpanName];

/** A counter's label, as the attribute its metric carries; a label not named here becomes `cloudtap.<label>`. */
export const LABEL_ATTRIBUTES: Readonly<Record<string, AttrName>> = {
  shard: Attr.Shard,
  reason: Attr.Reason,
  kind: Attr.ProblemKind,
  outcome: Attr.TlsOutcome,
  consumer: Attr.Consumer,
  sink: Attr.EgressSink,
  sink_kind: Attr.EgressSinkKind,
  variant: Attr.Variant,
  protocol: Attr.FlowProtocol,
  result: Attr.KeysResult,
  state: Attr.BlobState,
  wait_outcome: Attr.KeysWaitOutcome,
};

export const MetricKind = { Counter: "counter", Gauge: "gauge" } as const;
export type MetricKind = (typeof MetricKind)[keyof typeof MetricKind];

/** One series of a service's counter registry that a metric reads. */
export interface MetricSource {
  /** The counter or gauge name in the service's `CounterRegistry` (all its labelled series). */
  readonly series: string;
  /** Attributes this source adds (e.g. `{ "cloudtap.blob.state": "done" }`). */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Multiplied into the value (milliseconds to seconds: 0.001). */
  readonly scale?: number;
}

export interface MetricDeclaration {
  readonly name: string;
  readonly kind: MetricKind;
  /** UCUM: `{blob}`, `By`, `s`, `1`. */
  readonly unit: string;
  readonly description: string;
  readonly from: readonly MetricSource[];
}

const counter = (
  name: string,
  unit: string,
  description: string,
  from: readonly MetricSource[],
): MetricDeclaration => ({ name, kind: MetricKind.Counter, unit, description, from });
const gauge = (
  name: string,
  unit: string,
  description: string,
  from: readonly MetricSource[],
): MetricDeclaration => ({ name, kind: MetricKind.Gauge, unit, description, from });
const one = (series: string, attributes?: Readonly<Record<string, string>>): MetricSource =>
  attributes ? { series, attributes } : { series };

/** Every metric of the mesh. In Prometheus a name's dots become underscores and counters end in `_total`. */
export const METRICS: readonly MetricDeclaration[] = [
  // fetcher
  counter(
    "cloudtap.fetcher.blobs",
    "{blob}",
    "Blobs by state: listed, enqueued, skipped (done before), done, damaged, retried",
    [
      one("blobs_listed", { [Attr.BlobState]: "listed" }),
      one("blobs_enqueued", { [Attr.BlobState]: "enqueued" }),
      one("blobs_skipped_done", { [Attr.BlobState]: "skipped" }),
      one("blobs_done", { [Attr.BlobState]: "done" }),
      one("blobs_damaged", { [Attr.BlobState]: "damaged" }),
      one("blobs_retried", { [Attr.BlobState]: "retried" }),
    ],
  ),
  counter("cloudtap.fetcher.quarantined", "{blob}", "Blobs quarantined (dropped), by reason", [
    one("blobs_quarantined"),
  ]),
  counter("cloudtap.fetcher.blob_problems", "{problem}", "Problems found in damaged blobs, by kind", [
    one("blob_problems"),
  ]),
  counter(
    "cloudtap.fetcher.batches",
    "{batch}",
    "Chunk batches published, and duplicates JetStream dropped",
    [
      one("batches_published", { [Attr.BatchOutcome]: "published" }),
      one("batches_duplicate", { [Attr.BatchOutcome]: "duplicate" }),
    ],
  ),
  counter("cloudtap.fetcher.records", "{record}", "CTAP records published to the stitchers", [
    one("records_published"),
  ]),
  counter("cloudtap.fetcher.bytes", "By", "Bytes of chunk batches published", [one("bytes_published")]),
  counter("cloudtap.fetcher.stream_full_waits", "{wait}", "Publishes that waited for a full chunk stream", [
    one("stream_full_waits"),
  ]),
  counter("cloudtap.fetcher.eof_markers", "{marker}", "End-of-window markers published", [
    one("eof_markers_published"),
  ]),
  gauge("cloudtap.fetcher.lag", "s", "Age of the newest blob done (now minus its start time)", [
    { series: "blob_lag_ms", scale: 0.001 },
  ]),
  gauge("cloudtap.fetcher.lag.blobs", "{blob}", "Blobs listed but not yet done (the work queue's backlog)", [
    one("queue_pending"),
  ]),
  // JetStream, per durable consumer (fetchers and stitchers)
  gauge("cloudtap.jetstream.pending", "{message}", "Messages a durable consumer has not been delivered yet", [
    one("jetstream_pending"),
  ]),
  gauge("cloudtap.jetstream.ack_pending", "{message}", "Messages delivered to a consumer and not yet acked", [
    one("jetstream_ack_pending"),
  ]),
  // stitcher
  counter("cloudtap.stitcher.records", "{record}", "CTAP records stitched", [one("stitcher_records")]),
  counter("cloudtap.stitcher.messages_acked", "{message}", "Chunk messages acked (their connections done)", [
    one("stitcher_messages_acked"),
  ]),
  counter("cloudtap.stitcher.redeliveries", "{message}", "Redeliveries of messages this stitcher held", [
    one("stitcher_redeliveries_of_held"),
  ]),
  counter(
    "cloudtap.stitcher.batch_problems",
    "{problem}",
    "Chunk batch records dropped as undecodable, by kind",
    [one("stitcher_batch_problems")],
  ),
  counter("cloudtap.stitcher.mirror.batches", "{batch}", "Mirror batches sent to mirror-egress, per shard", [
    one("stitcher_batches_sent"),
  ]),
  counter("cloudtap.stitcher.mirror.frames", "{packet}", "Packets sent to mirror-egress", [
    one("stitcher_frames_sent"),
  ]),
  counter(
    "cloudtap.stitcher.mirror.failures",
    "{batch}",
    "Mirror batches mirror-egress did not acknowledge",
    [one("stitcher_mirror_failures")],
  ),
  counter(
    "cloudtap.stitcher.eof_deferred",
    "{marker}",
    "End-of-window markers deferred (messages outstanding)",
    [one("stitcher_eof_deferred")],
  ),
  counter("cloudtap.stitcher.flows", "{flow}", "Flows stitched, per shard and protocol", [
    one("stitcher_flows_tcp", { [Attr.FlowProtocol]: "tcp" }),
    one("stitcher_flows_udp", { [Attr.FlowProtocol]: "udp" }),
  ]),
  gauge("cloudtap.stitcher.flows.open", "{flow}", "Flows open in the flow table, per shard", [
    one("stitcher_flows"),
  ]),
  counter("cloudtap.stitcher.packets", "{packet}", "Packets synthesized, per shard and variant", [
    one("stitcher_packets"),
  ]),
  counter("cloudtap.stitcher.gaps", "{gap}", "Gaps (bytes never seen) in stitched flows, per shard", [
    one("stitcher_gaps"),
  ]),
  counter("cloudtap.stitcher.gap_bytes", "By", "Bytes missing in gaps, per shard", [
    one("stitcher_gap_bytes"),
  ]),
  counter("cloudtap.stitcher.duplicates", "By", "Duplicate bytes (seen twice) dropped, per shard", [
    one("stitcher_duplicate_bytes"),
  ]),
  counter("cloudtap.stitcher.late_records", "{record}", "Records that came after their flow completed", [
    one("stitcher_late_records"),
  ]),
  counter("cloudtap.stitcher.drops", "{item}", "What the stitcher dropped, by reason", [
    one("stitcher_dropped"),
  ]),
  counter("cloudtap.stitcher.tls.outcomes", "{flow}", "TLS decryption outcomes, per shard", [
    one("stitcher_tls_outcome"),
  ]),
  counter(
    "cloudtap.stitcher.tls.candidate_rejections",
    "{flow}",
    "TLS connections where a candidate secret set failed (a client random logged with other secrets too)",
    [one("stitcher_tls_candidate_rejections")],
  ),
  counter("cloudtap.stitcher.keys", "{key}", "Key-broker answers: hits, misses, failed lookups", [
    one("stitcher_key_hits", { [Attr.KeysResult]: "hit" }),
    one("stitcher_key_misses", { [Attr.KeysResult]: "miss" }),
    one("stitcher_key_errors", { [Attr.KeysResult]: "error" }),
  ]),
  gauge("cloudtap.stitcher.held_messages", "{message}", "Chunk messages held until their connections end", [
    one("stitcher_held_messages"),
  ]),
  // key-broker
  counter("cloudtap.keybroker.lookups", "{lookup}", "Lookups answered", [one("lookups")]),
  counter("cloudtap.keybroker.keys", "{key}", "Client randoms looked up: hits and misses", [
    one("lookup_hits", { [Attr.KeysResult]: "hit" }),
    one("lookup_misses", { [Attr.KeysResult]: "miss" }),
  ]),
  counter(
    "cloudtap.keybroker.waits",
    "{wait}",
    "Waits for keys: started, ready, partial, refused (overflow)",
    [
      one("waits", { [Attr.KeysWaitOutcome]: "started" }),
      one("waits_ready", { [Attr.KeysWaitOutcome]: "ready" }),
      one("waits_partial", { [Attr.KeysWaitOutcome]: "partial" }),
      one("waits_overflow", { [Attr.KeysWaitOutcome]: "overflow" }),
    ],
  ),
  gauge("cloudtap.keybroker.waiters", "{wait}", "Waits in flight", [one("waiters")]),
  counter("cloudtap.keybroker.key_logs", "{object}", "Key logs ingested", [one("key_logs_ingested")]),
  counter("cloudtap.keybroker.secrets_added", "{secret}", "Secrets added to the vault (counts only)", [
    one("secrets_added"),
  ]),
  counter(
    "cloudtap.keybroker.conflicts",
    "{secret}",
    "Secrets that disagreed with the vault (kept as another candidate set)",
    [one("conflicts")],
  ),
  counter(
    "cloudtap.keybroker.candidates_dropped",
    "{secret}",
    "Conflicting secrets beyond the candidate sets kept per client random (not kept)",
    [one("candidates_dropped")],
  ),
  counter("cloudtap.keybroker.lines_skipped", "{line}", "Key-log lines skipped as malformed", [
    one("lines_skipped"),
  ]),
  counter("cloudtap.keybroker.watcher.polls", "{poll}", "Key-log store listings", [one("watcher_polls")]),
  counter("cloudtap.keybroker.watcher.bytes", "By", "Key-log bytes read", [one("watcher_key_log_bytes")]),
  counter("cloudtap.keybroker.watcher.problems", "{problem}", "Key logs that could not be read", [
    one("watcher_problems"),
  ]),
  // mirror-egress
  counter("cloudtap.egress.batches", "{batch}", "Mirror batches written to every sink", [
    one("egress_batches"),
  ]),
  counter("cloudtap.egress.frames", "{packet}", "Packets replayed into the outputs", [one("egress_frames")]),
  counter("cloudtap.egress.packets", "{packet}", "Packets each sink wrote or sent, per sink", [
    one("egress_sink_packets"),
  ]),
  counter("cloudtap.egress.bytes", "By", "Bytes each sink wrote or sent, per sink", [
    one("egress_sink_bytes"),
  ]),
  counter("cloudtap.egress.drops", "{item}", "What a sink dropped or could not send, per sink and reason", [
    one("egress_sink_drops"),
  ]),
];

/** The declaration that reads a counter series, if any (every series a service keeps should have one). */
export function metricOfSeries(series: string): MetricDeclaration | undefined {
  return METRICS.find((m) => m.from.some((s) => s.series === series));
}

/** The Prometheus name OpenTelemetry's exporter gives a metric (dots to underscores, `_total` on counters). */
export function prometheusName(metric: MetricDeclaration): string {
  const base = metric.name.replace(/[^a-zA-Z0-9_:]/g, "_");
  return metric.kind === MetricKind.Counter ? `${base}_total` : base;
}
