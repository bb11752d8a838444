/**
 * The output flags of `cloudtap stitch` and `cloudtap up` (`--pcap`, `--pcapng`, `--vxlan`, `--geneve`,
 * `--policy`, `--pcap-over-ip`, `--out-dir`, ...): one flag table both commands parse with, and one parse
 * into an egress spec, checked with errors that name the flag. The targets, listen addresses and the spec
 * itself are validated by @cloudtap/egress; this module only maps flag text to it. `cloudtap up` then hands
 * the spec to mirror-egress in its environment's terms (`meshOutputsOf`).
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  type CaptureFileSpec,
  checkEgressSpec,
  type EgressSpec,
  type ExportPolicySpec,
  isEgressError,
  parseListenAddress,
  parseTunnelTarget,
  SlowClientPolicy,
  type TunnelTargetSpec,
} from "@cloudtap/egress";
import type { LocalMeshOutputs } from "@cloudtap/local-mesh";
import { parseDuration, parseSize } from "./units.js";
import { UsageError } from "./usage-error.js";

/** "TLSPORT:CLEARPORT" of --cleartext-port. */
export function parseCleartextPorts(texts: readonly string[]): Record<number, number> {
  const ports: Record<number, number> = {};
  for (const m of texts) {
    const r = /^(\d+):(\d+)$/.exec(m);
    if (!r || Number(r[1]) > 65535 || Number(r[2]) > 65535)
      throw new UsageError(`--cleartext-port "${m}" is not TLSPORT:CLEARPORT`);
    ports[Number(r[1])] = Number(r[2]);
  }
  return ports;
}

/** The output flags as `node:util` parseArgs options (spread into a command's table). */
export const OUTPUT_FLAG_OPTIONS = {
  pcap: { type: "string", multiple: true, default: [] as string[] },
  pcapng: { type: "string", multiple: true, default: [] as string[] },
  vxlan: { type: "string", multiple: true, default: [] as string[] },
  geneve: { type: "string", multiple: true, default: [] as string[] },
  policy: { type: "string" },
  "remap-log": { type: "string" },
  "pcap-over-ip": { type: "string" },
  "pcap-over-ip-clients": { type: "string", default: "0" },
  "pcap-over-ip-slow": { type: "string" },
  "pcap-over-ip-block-timeout": { type: "string", default: "30s" },
  "pcap-over-ip-resolution": { type: "string", default: "microsecond" },
  "out-dir": { type: "string" },
  "out-format": { type: "string", default: "pcapng" },
  "out-prefix": { type: "string", default: "cloudtap" },
  "rotate-size": { type: "string" },
  "rotate-time": { type: "string" },
  upload: { type: "string" },
} as const;

export interface OutputFlags {
  readonly pcap: readonly string[];
  readonly pcapng: readonly string[];
  readonly vxlan: readonly string[];
  readonly geneve: readonly string[];
  readonly policy?: string | undefined;
  readonly "remap-log"?: string | undefined;
  readonly "pcap-over-ip"?: string | undefined;
  readonly "pcap-over-ip-clients": string;
  readonly "pcap-over-ip-slow"?: string | undefined;
  readonly "pcap-over-ip-block-timeout": string;
  readonly "pcap-over-ip-resolution": string;
  readonly "out-dir"?: string | undefined;
  readonly "out-format": string;
  readonly "out-prefix": string;
  readonly "rotate-size"?: string | undefined;
  readonly "rotate-time"?: string | undefined;
  readonly upload?: string | undefined;
}

export interface EgressSpecDefaults {
  readonly mtu: number;
  readonly embedKeys: boolean;
  /** The PCAP-over-IP slow-client policy when `--pcap-over-ip-slow` is not given. */
  readonly slowClient: SlowClientPolicy;
}

/** The output flags as an egress spec, checked (errors name the flag); no output is opened. */
export function egressSpecFromFlags(values: OutputFlags, defaults: EgressSpecDefaults): EgressSpec {
  const { mtu, embedKeys } = defaults;
  const flagTarget = (option: string, kind: "vxlan" | "geneve", text: string): TunnelTargetSpec => {
    try {
      return parseTunnelTarget(kind, text);
    } catch (err) {
      throw isEgressError(err) ? new UsageError(`${option} ${text}: ${err.message}`) : err;
    }
  };
  const targets = [
    ...values.vxlan.map((t) => flagTarget("--vxlan", "vxlan", t)),
    ...values.geneve.map((t) => flagTarget("--geneve", "geneve", t)),
  ];
  let policy: ExportPolicySpec = {};
  if (values.policy !== undefined) {
    let text: string;
    try {
      text = readFileSync(values.policy, "utf8");
    } catch (err) {
      throw new UsageError(`--policy ${values.policy}: ${(err as Error).message}`);
    }
    try {
      policy = JSON.parse(text) as ExportPolicySpec;
    } catch (err) {
      throw new UsageError(`--policy ${values.policy}: not valid JSON: ${(err as Error).message}`);
    }
  }
  policy = { ...policy, targets: [...(policy.targets ?? []), ...targets] };
  let pcapOverIp: EgressSpec["pcapOverIp"];
  const waitForClients = Number(values["pcap-over-ip-clients"]);
  if (!Number.isInteger(waitForClients) || waitForClients < 0)
    throw new UsageError("--pcap-over-ip-clients must be a whole number");
  if (values["pcap-over-ip"] !== undefined) {
    let listen: { host: string; port: number };
    try {
      listen = parseListenAddress(values["pcap-over-ip"]);
    } catch (err) {
      throw isEgressError(err)
        ? new UsageError(`--pcap-over-ip ${err.message.replace(/^listen: /, "")}`)
        : err;
    }
    const slow = values["pcap-over-ip-slow"] ?? defaults.slowClient;
    if (
      slow !== SlowClientPolicy.Block &&
      slow !== SlowClientPolicy.Drop &&
      slow !== SlowClientPolicy.Disconnect
    )
      throw new UsageError("--pcap-over-ip-slow is block, drop or disconnect");
    const blockNs = parseDuration("--pcap-over-ip-block-timeout", values["pcap-over-ip-block-timeout"]);
    if (blockNs < 1_000_000n) throw new UsageError("--pcap-over-ip-block-timeout is at least 1ms");
    const resolution = values["pcap-over-ip-resolution"];
    if (resolution !== "microsecond" && resolution !== "nanosecond")
      throw new UsageError("--pcap-over-ip-resolution is microsecond or nanosecond");
    pcapOverIp = {
      ...listen,
      slowClient: slow,
      blockTimeoutMs: Number(blockNs / 1_000_000n),
      resolution,
      waitForClients,
    };
  } else if (waitForClients > 0) throw new UsageError("--pcap-over-ip-clients needs --pcap-over-ip");
  const outDir = values["out-dir"];
  const outFormat = values["out-format"];
  if (outFormat !== "pcap" && outFormat !== "pcapng") throw new UsageError("--out-format is pcap or pcapng");
  const rotateBytes =
    values["rotate-size"] === undefined ? undefined : parseSize("--rotate-size", values["rotate-size"]);
  const rotateNs =
    values["rotate-time"] === undefined ? undefined : parseDuration("--rotate-time", values["rotate-time"]);
  if (
    (rotateBytes !== undefined || rotateNs !== undefined || values.upload !== undefined) &&
    outDir === undefined
  )
    throw new UsageError("--rotate-size, --rotate-time and --upload go with --out-dir");
  const files: CaptureFileSpec[] = [
    ...values.pcap.map((path) => ({ path, format: "pcap" as const })),
    ...values.pcapng.map((path) => ({ path, format: "pcapng" as const })),
  ];
  const spec: EgressSpec = {
    files,
    ...(outDir === undefined
      ? {}
      : {
          rotating: {
            dir: outDir,
            format: outFormat,
            prefix: values["out-prefix"],
            ...(rotateBytes === undefined ? {} : { rotateBytes }),
            ...(rotateNs === undefined ? {} : { rotateNs }),
            ...(values.upload === undefined ? {} : { upload: values.upload }),
          },
        }),
    ...(pcapOverIp ? { pcapOverIp } : {}),
    policy,
    ...(values["remap-log"] === undefined ? {} : { remapLog: values["remap-log"] }),
    embedKeys,
    mtu,
  };
  try {
    checkEgressSpec(spec);
  } catch (err) {
    if (!isEgressError(err)) throw err;
    if (err.message.startsWith("remapLog:"))
      throw new UsageError("the policy remaps addresses: give --remap-log FILE for the mapping log");
    if (err.message.startsWith("outputs:"))
      throw new UsageError(
        "give at least one output: --pcap FILE, --pcapng FILE, --vxlan, --geneve, --pcap-over-ip or --out-dir " +
          "(or a --policy with targets)",
      );
    if (err.message.startsWith("files:")) throw new UsageError(`--pcap/--pcapng: ${err.message.slice(7)}`);
    throw new UsageError(`--policy ${values.policy ?? ""}: ${err.message}`);
  }
  return spec;
}

/**
 * An egress spec in mirror-egress's terms (`cloudtap up`): capture files, rotating files and the
 * PCAP-over-IP server as they are; the policy, with the `--vxlan`/`--geneve` targets added by
 * `egressSpecFromFlags`, written once to `policyPath` (JSON) for mirror-egress to parse. What the service
 * does not take from its environment is refused by flag name.
 */
export function meshOutputsOf(spec: EgressSpec, policyPath: string): LocalMeshOutputs {
  const rotating = spec.rotating;
  if (rotating && (rotating.upload !== undefined || (rotating.prefix ?? "cloudtap") !== "cloudtap"))
    throw new UsageError("cloudtap up: --upload and --out-prefix are for cloudtap stitch");
  if (rotating && (rotating.rotateBytes !== undefined || rotating.rotateNs !== undefined))
    throw new UsageError("cloudtap up: --rotate-size and --rotate-time are for cloudtap stitch");
  const listen = spec.pcapOverIp;
  if (listen && listen.slowClient === SlowClientPolicy.Block)
    throw new UsageError(
      "cloudtap up: --pcap-over-ip-slow is drop or disconnect (block is for one-shot runs)",
    );
  if (listen && (listen.waitForClients ?? 0) > 0)
    throw new UsageError("cloudtap up: --pcap-over-ip-clients is for cloudtap stitch");
  if (listen && (listen.resolution ?? "microsecond") !== "microsecond")
    throw new UsageError("cloudtap up: --pcap-over-ip-resolution is for cloudtap stitch");
  const policy = spec.policy ?? {};
  const writesPolicy = Object.entries(policy).some(
    ([k, v]) => k !== "targets" || (v as unknown[]).length > 0,
  );
  if (writesPolicy) writeFileSync(policyPath, `${JSON.stringify(policy, null, 2)}\n`, { mode: 0o600 });
  const files = spec.files ?? [];
  return {
    pcap: files.filter((f) => f.format === "pcap").map((f) => f.path),
    pcapng: files.filter((f) => f.format === "pcapng").map((f) => f.path),
    ...(writesPolicy ? { policyFile: policyPath } : {}),
    ...(spec.remapLog === undefined ? {} : { remapLog: spec.remapLog }),
    ...(listen
      ? {
          pcapOverIp: `${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${listen.port}`,
          pcapOverIpSlow: listen.slowClient,
        }
      : {}),
    ...(rotating ? { outDir: rotating.dir, outFormat: rotating.format } : {}),
    ...(spec.embedKeys ? {} : { embedKeys: false }),
  };
}
