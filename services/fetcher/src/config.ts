/**
 * The fetcher's configuration (environment `FETCHER_*`, or the YAML file named by `FETCHER_CONFIG`).
 * One-shot runs set FETCHER_ONCE=true and a window (FETCHER_SINCE / FETCHER_UNTIL); continuous runs poll.
 */
import {
  type ConfigSpec,
  integer,
  type LoadConfigOptions,
  loadConfig,
  parseBoolean,
  parseDurationMs,
  parseHostPort,
  parseSize,
  parseString,
  parseTimestampNs,
} from "@cloudtap/service-kit";

export const SERVICE = "fetcher";

export const fetcherConfigSpec = {
  source: {
    env: "FETCHER_SOURCE",
    parse: parseString,
    doc: "data store URL (a directory path, file://, s3://, gs://, azblob:// or https://<account>.blob.core.windows.net/...)",
  },
  sourceCredentials: {
    env: "FETCHER_SOURCE_CREDENTIALS",
    parse: parseString,
    optional: true,
    doc: "credentials file of a cloud data store (AWS, GCP service-account or Azure JSON); default: the SDK's environment and default chain",
  },
  prefix: { env: "FETCHER_PREFIX", parse: parseString, default: "", doc: "store prefix above data/" },
  natsUrl: { env: "FETCHER_NATS_URL", parse: parseString, doc: "NATS server URL(s), comma-separated" },
  shards: { env: "FETCHER_SHARDS", parse: integer({ min: 1, max: 4096 }), doc: "shard count of the mesh" },
  run: {
    env: "FETCHER_RUN",
    parse: (raw: string) => {
      const s = parseString(raw);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) throw new Error("must be 1..64 of [A-Za-z0-9_-]");
      return s;
    },
    default: "live",
    doc: "run id: live, or a replay's id",
  },
  once: {
    env: "FETCHER_ONCE",
    parse: parseBoolean,
    default: false,
    doc: "list the window once, then mark its end",
  },
  sinceNs: {
    env: "FETCHER_SINCE",
    parse: parseTimestampNs,
    optional: true,
    doc: "window start (ISO 8601 or Unix ns)",
  },
  untilNs: { env: "FETCHER_UNTIL", parse: parseTimestampNs, optional: true, doc: "window end, exclusive" },
  pollMs: {
    env: "FETCHER_POLL",
    parse: parseDurationMs,
    default: 10_000,
    doc: "listing interval (continuous)",
  },
  latenessMs: {
    env: "FETCHER_LATENESS",
    parse: parseDurationMs,
    default: 300_000,
    doc: "re-list this far before the cursor for late blobs (continuous)",
  },
  statusListen: {
    env: "FETCHER_STATUS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the StatusService and health (unset: no status server)",
  },
  metricsListen: {
    env: "FETCHER_METRICS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the Prometheus scrape endpoint (GET /metrics, plain HTTP); unset: none",
  },
  tlsDir: {
    env: "FETCHER_TLS_DIR",
    parse: parseString,
    optional: true,
    doc: "directory with the mesh CA and this service's certificate; unset: status served without TLS",
  },
  chunksMaxBytes: {
    env: "FETCHER_CHUNKS_MAX_BYTES",
    parse: parseSize,
    optional: true,
    doc: "cap of the CTAP_CHUNKS stream (a full stream makes fetchers wait)",
  },
  ackWaitMs: { env: "FETCHER_ACK_WAIT", parse: parseDurationMs, default: 60_000, doc: "work-queue ack wait" },
  instance: {
    env: "FETCHER_INSTANCE",
    parse: parseString,
    optional: true,
    doc: "instance id (default host-pid)",
  },
} as const satisfies ConfigSpec;

export function loadFetcherConfig(options?: LoadConfigOptions) {
  return loadConfig(SERVICE, fetcherConfigSpec, options);
}
