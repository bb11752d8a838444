/**
 * The stitcher's configuration (environment `STITCHER_*` and peers as `<PEER>_ADDR`, or the YAML file named
 * by `STITCHER_CONFIG`). It owns shards `STITCHER_SHARDS` (e.g. "0-7") of `STITCHER_SHARD_COUNT`.
 */
import { DEFAULT_STITCH_PULL_BYTES } from "@cloudtap/mesh";
import {
  type ConfigSpec,
  integer,
  type LoadConfigOptions,
  loadConfig,
  oneOf,
  parseBoolean,
  parseDurationMs,
  parseHostPort,
  parseIntegerRange,
  parseSize,
  parseString,
} from "@cloudtap/service-kit";

export const SERVICE = "stitcher";

const run = (raw: string) => {
  const s = parseString(raw);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) throw new Error("must be 1..64 of [A-Za-z0-9_-]");
  return s;
};

const portMap = (raw: string): Record<number, number> => {
  const map: Record<number, number> = {};
  for (const part of raw.split(",").filter((p) => p.trim() !== "")) {
    const m = /^\s*(\d+):(\d+)\s*$/.exec(part);
    if (!m || Number(m[1]) > 65535 || Number(m[2]) > 65535)
      throw new Error(`"${part}" is not TLSPORT:CLEARPORT`);
    map[Number(m[1])] = Number(m[2]);
  }
  return map;
};

export const stitcherConfigSpec = {
  natsUrl: { env: "STITCHER_NATS_URL", parse: parseString, doc: "NATS server URL(s), comma-separated" },
  run: { env: "STITCHER_RUN", parse: run, default: "live", doc: "run id: live, or a replay's id" },
  shardCount: {
    env: "STITCHER_SHARD_COUNT",
    parse: integer({ min: 1, max: 4096 }),
    doc: "shard count of the mesh (as the fetchers' FETCHER_SHARDS)",
  },
  shards: {
    env: "STITCHER_SHARDS",
    parse: (raw: string) => (raw.trim() === "auto" ? ("auto" as const) : parseIntegerRange(raw)),
    optional: true,
    doc: 'the shards this instance owns, e.g. "0-7" (default: all), or "auto": shared by lease with the other stitchers of the run, rebalanced as stitchers come and go',
  },
  mirrorEgressAddr: { env: "MIRROR_EGRESS_ADDR", parse: parseHostPort, doc: "mirror-egress host:port" },
  keyBrokerAddr: {
    env: "KEY_BROKER_ADDR",
    parse: parseHostPort,
    optional: true,
    doc: "key-broker host:port (unset: no decryption, original variant only)",
  },
  metricsListen: {
    env: "STITCHER_METRICS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the Prometheus scrape endpoint (GET /metrics, plain HTTP); unset: none",
  },
  flowTraceRatio: {
    env: "STITCHER_FLOW_TRACE_RATIO",
    parse: (raw: string) => {
      const v = Number(raw.trim());
      if (!(v >= 0 && v <= 1)) throw new Error("expected a share of flows from 0 to 1");
      return v;
    },
    default: 0.01,
    doc: "share of flows traced with flow and decrypt spans (picked by connection id)",
  },
  tlsDir: {
    env: "STITCHER_TLS_DIR",
    parse: parseString,
    optional: true,
    doc: "directory with the mesh CA and the stitcher's certificate (mutual TLS to key-broker and mirror-egress)",
  },
  variant: {
    env: "STITCHER_VARIANT",
    parse: oneOf(["original", "cleartext", "both"] as const),
    default: "original",
    doc: "original, cleartext or both",
  },
  mtu: { env: "STITCHER_MTU", parse: integer({ min: 576, max: 65535 }), default: 1500, doc: "link MTU" },
  filter: {
    env: "STITCHER_FILTER",
    parse: (raw: string) =>
      raw
        .split(";")
        .map((r) => r.trim())
        .filter((r) => r !== ""),
    default: [] as string[],
    doc: 'flow filter rules separated by ";" (as cloudtap stitch --filter)',
  },
  cleartextPorts: {
    env: "STITCHER_CLEARTEXT_PORTS",
    parse: portMap,
    default: {} as Record<number, number>,
    doc: 'TLSPORT:CLEARPORT pairs, e.g. "9443:8080"',
  },
  keyWaitMs: {
    env: "STITCHER_KEY_WAIT",
    parse: parseDurationMs,
    default: 5000,
    doc: "how long a batch waits for its connections' keys",
  },
  idleAfterMs: {
    env: "STITCHER_IDLE_AFTER",
    parse: parseDurationMs,
    optional: true,
    doc: "continuous mode: a shard without messages this long tells mirror-egress not to wait for it (unset: never)",
  },
  advanceWhenIdle: {
    env: "STITCHER_ADVANCE_WHEN_IDLE",
    parse: parseBoolean,
    optional: true,
    doc: "continuous mode: while a shard gets no message its record clock runs on with the wall clock, up to the lateness, so its last frames leave once the lateness has passed (default: on when STITCHER_IDLE_AFTER is set)",
  },
  latenessMs: {
    env: "STITCHER_LATENESS",
    parse: parseDurationMs,
    default: 120_000,
    doc: "record-time lateness bound: timeouts, gap waits and the time order act at the newest record time less this (docs/mesh.md)",
  },
  ackWaitMs: { env: "STITCHER_ACK_WAIT", parse: parseDurationMs, default: 30_000, doc: "JetStream ack wait" },
  pullBytes: {
    env: "STITCHER_PULL_BYTES",
    parse: parseSize,
    default: DEFAULT_STITCH_PULL_BYTES,
    doc: "chunk bytes pulled ahead over all shards of the live run (a replay pulls half as much beside it); keep the sum under nats-server's max_pending, 64 MiB by default, or it drops the connection as a slow consumer",
  },
  statusListen: {
    env: "STITCHER_STATUS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the StatusService and health (unset: none)",
  },
  instance: {
    env: "STITCHER_INSTANCE",
    parse: parseString,
    optional: true,
    doc: "instance id (default host-pid)",
  },
} as const satisfies ConfigSpec;

export function loadStitcherConfig(options?: LoadConfigOptions) {
  return loadConfig(SERVICE, stitcherConfigSpec, options);
}
