/**
 * mirror-egress's configuration (environment `MIRROR_EGRESS_*`, or the YAML file named by
 * `MIRROR_EGRESS_CONFIG`): where it listens, and its outputs, in the forms `cloudtap stitch` takes them
 * (lists are comma-separated; tunnel targets, which hold commas, are separated by ";"). The export policy
 * file is JSON, parsed once by the egress package.
 */
import { readFileSync } from "node:fs";
import {
  type EgressSpec,
  type ExportPolicySpec,
  parseListenAddress,
  parseTunnelTarget,
  SlowClientPolicy,
  type TunnelTargetSpec,
} from "@cloudtap/egress";
import {
  type ConfigSpec,
  integer,
  type LoadConfigOptions,
  loadConfig,
  oneOf,
  parseBoolean,
  parseDurationMs,
  parseHostPort,
  parseSize,
  parseString,
} from "@cloudtap/service-kit";

export const SERVICE = "mirror-egress";

const paths = (raw: string) =>
  raw
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
const targets =
  (kind: "vxlan" | "geneve") =>
  (raw: string): TunnelTargetSpec[] =>
    raw
      .split(";")
      .map((t) => t.trim())
      .filter((t) => t !== "")
      .map((t) => parseTunnelTarget(kind, t));
const policyFile = (raw: string): ExportPolicySpec => {
  const path = parseString(raw);
  return JSON.parse(readFileSync(path, "utf8")) as ExportPolicySpec;
};

export const mirrorEgressConfigSpec = {
  listen: {
    env: "MIRROR_EGRESS_LISTEN",
    parse: parseHostPort,
    doc: "host:port of MirrorService, status and health",
  },
  metricsListen: {
    env: "MIRROR_EGRESS_METRICS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the Prometheus scrape endpoint (GET /metrics, plain HTTP); unset: none",
  },
  tlsDir: {
    env: "MIRROR_EGRESS_TLS_DIR",
    parse: parseString,
    optional: true,
    doc: "directory with the mesh CA and mirror-egress's certificate (mutual TLS; only stitchers may stream)",
  },
  pcap: { env: "MIRROR_EGRESS_PCAP", parse: paths, default: [] as string[], doc: "pcap files" },
  pcapng: { env: "MIRROR_EGRESS_PCAPNG", parse: paths, default: [] as string[], doc: "pcapng files" },
  vxlan: {
    env: "MIRROR_EGRESS_VXLAN",
    parse: targets("vxlan"),
    default: [] as TunnelTargetSpec[],
    doc: 'VXLAN targets "HOST[:PORT][,vni=N]...", separated by ";"',
  },
  geneve: {
    env: "MIRROR_EGRESS_GENEVE",
    parse: targets("geneve"),
    default: [] as TunnelTargetSpec[],
    doc: 'GENEVE targets, separated by ";"',
  },
  policy: {
    env: "MIRROR_EGRESS_POLICY",
    parse: policyFile,
    optional: true,
    doc: "export policy file (JSON)",
  },
  remapLog: {
    env: "MIRROR_EGRESS_REMAP_LOG",
    parse: parseString,
    optional: true,
    doc: "address-mapping log",
  },
  pcapOverIp: {
    env: "MIRROR_EGRESS_PCAP_OVER_IP",
    parse: parseListenAddress,
    optional: true,
    doc: "[ADDR:]PORT of a PCAP-over-IP server",
  },
  pcapOverIpSlow: {
    env: "MIRROR_EGRESS_PCAP_OVER_IP_SLOW",
    parse: oneOf([SlowClientPolicy.Drop, SlowClientPolicy.Disconnect] as const),
    default: SlowClientPolicy.Drop,
    doc: "a PCAP-over-IP client that does not keep up: drop or disconnect",
  },
  pcapOverIpWait: {
    env: "MIRROR_EGRESS_PCAP_OVER_IP_WAIT",
    parse: integer({ min: 0, max: 16 }),
    default: 0,
    doc: "PCAP-over-IP clients to wait for before the first packet (the egress is not healthy until then)",
  },
  outDir: { env: "MIRROR_EGRESS_OUT_DIR", parse: parseString, optional: true, doc: "rotating capture files" },
  outFormat: {
    env: "MIRROR_EGRESS_OUT_FORMAT",
    parse: oneOf(["pcap", "pcapng"] as const),
    default: "pcapng",
    doc: "format of the rotating files",
  },
  rotateBytes: {
    env: "MIRROR_EGRESS_ROTATE_SIZE",
    parse: parseSize,
    optional: true,
    doc: "rotate at this size",
  },
  rotateMs: {
    env: "MIRROR_EGRESS_ROTATE_TIME",
    parse: parseDurationMs,
    optional: true,
    doc: "rotate after this",
  },
  embedKeys: {
    env: "MIRROR_EGRESS_EMBED_KEYS",
    parse: parseBoolean,
    default: true,
    doc: "pcapng outputs embed the TLS keys of their flows",
  },
  mtu: {
    env: "MIRROR_EGRESS_MTU",
    parse: integer({ min: 576, max: 65535 }),
    default: 1500,
    doc: "NDR link MTU",
  },
  maxInFlight: {
    env: "MIRROR_EGRESS_MAX_IN_FLIGHT",
    parse: integer({ min: 1, max: 1024 }),
    default: 8,
    doc: "unacknowledged batches per stitcher stream",
  },
  mergeMaxBytes: {
    env: "MIRROR_EGRESS_MERGE_MAX_BYTES",
    parse: parseSize,
    optional: true,
    doc: "most frame bytes the time merge of the stitcher streams holds (default 64 MiB; beyond it the oldest go out, counted)",
  },
  silentAfterMs: {
    env: "MIRROR_EGRESS_SILENT_AFTER",
    parse: parseDurationMs,
    default: 30_000,
    doc: "a stitcher stream that sent nothing this long is not waited for by the time merge",
  },
  stateDir: {
    env: "MIRROR_EGRESS_STATE_DIR",
    parse: parseString,
    optional: true,
    doc: "durable state (journal of file lengths and frame digests): a restarted egress resumes its capture files and drops frames it wrote (docs/mesh.md)",
  },
  dedupMaxEntries: {
    env: "MIRROR_EGRESS_DEDUP_MAX_ENTRIES",
    parse: integer({ min: 1 }),
    default: 2_000_000,
    doc: "most frame digests kept to drop copies of frames written (beyond it the flows that ended longest ago are forgotten, counted)",
  },
  instance: { env: "MIRROR_EGRESS_INSTANCE", parse: parseString, optional: true, doc: "instance id" },
} as const satisfies ConfigSpec;

export function loadMirrorEgressConfig(options?: LoadConfigOptions) {
  return loadConfig(SERVICE, mirrorEgressConfigSpec, options);
}

export type MirrorEgressConfig = ReturnType<typeof loadMirrorEgressConfig>["values"];

/** The outputs of the configuration as an egress spec (checked when it is opened). */
export function egressSpecOf(c: MirrorEgressConfig, resumeAt?: Readonly<Record<string, number>>): EgressSpec {
  const policy = c.policy ?? {};
  const resume = (path: string) => (resumeAt ? { resumeAt: resumeAt[path] ?? 0 } : {});
  return {
    files: [
      ...c.pcap.map((path) => ({ path, format: "pcap" as const, ...resume(path) })),
      ...c.pcapng.map((path) => ({ path, format: "pcapng" as const, ...resume(path) })),
    ],
    ...(c.outDir === undefined
      ? {}
      : {
          rotating: {
            dir: c.outDir,
            format: c.outFormat,
            ...(c.rotateBytes === undefined ? {} : { rotateBytes: c.rotateBytes }),
            ...(c.rotateMs === undefined ? {} : { rotateNs: BigInt(c.rotateMs) * 1_000_000n }),
          },
        }),
    ...(c.pcapOverIp
      ? { pcapOverIp: { ...c.pcapOverIp, slowClient: c.pcapOverIpSlow, waitForClients: c.pcapOverIpWait } }
      : {}),
    policy: { ...policy, targets: [...(policy.targets ?? []), ...c.vxlan, ...c.geneve] },
    ...(c.remapLog === undefined ? {} : { remapLog: c.remapLog }),
    embedKeys: c.embedKeys,
    mtu: c.mtu,
  };
}
