/**
 * Every output of a run as one plain, serializable spec: the CLI builds it from flags, mirror-egress from its
 * environment and YAML; `openEgress` (the Node adapter) opens it. Validation lives here, so a bad target or
 * listen address fails the same way, with the same words, wherever it was written.
 */
import { EgressError, EgressErrorCode, isEgressError } from "./errors.js";
import {
  createExportPolicy,
  type ExportPolicy,
  type ExportPolicySpec,
  type TunnelTargetSpec,
} from "./export-policy.js";
import { DEFAULT_MAX_CLIENTS, PCAP_OVER_IP_PORT, SlowClientPolicy } from "./pcap-over-ip-policy.js";

export interface CaptureFileSpec {
  readonly path: string;
  readonly format: "pcap" | "pcapng";
  /** Write on after this many bytes of the file a continuous run wrote before (see CaptureFileOutput). */
  readonly resumeAt?: number;
}

export interface RotatingFilesSpec {
  readonly dir: string;
  readonly format: "pcap" | "pcapng";
  /** File name prefix. Default "cloudtap". */
  readonly prefix?: string;
  readonly rotateBytes?: number;
  readonly rotateNs?: bigint;
  /** A store URL that closed files are uploaded to (opened by the wiring's `openUploadStore`). */
  readonly upload?: string;
}

export interface PcapOverIpSpec {
  readonly host: string;
  readonly port: number;
  readonly slowClient: SlowClientPolicy;
  /** `block`: how long a write waits for a full client before dropping it (ms). Default 30 s. */
  readonly blockTimeoutMs?: number;
  /** Time stamps on the stream. Default "microsecond" (every reader); "nanosecond": magic a1b23c4d. */
  readonly resolution?: "microsecond" | "nanosecond";
  /** Clients to wait for before the first packet, at most the server's client limit (16). Default 0. */
  readonly waitForClients?: number;
}

export interface EgressSpec {
  /** Capture files (`--pcap`, `--pcapng`), any number. */
  readonly files?: readonly CaptureFileSpec[];
  readonly rotating?: RotatingFilesSpec;
  readonly pcapOverIp?: PcapOverIpSpec;
  /** Tunnel targets and the rules that route flows to them. */
  readonly policy?: ExportPolicySpec;
  /** Where address mappings are logged (JSON lines); required when the policy remaps. */
  readonly remapLog?: string;
  /** Whether pcapng outputs embed the TLS keys of their flows. */
  readonly embedKeys: boolean;
  /**
   * The frames carry decrypted content (a cleartext variant with keys): every file output, pcap included,
   * is created mode 0600, and uploaded files are sensitive objects. Default false.
   */
  readonly decryptedContent?: boolean;
  /** The NDR link's MTU. Default 1500. */
  readonly mtu?: number;
  /** The writer named in pcapng section headers. Default "cloudtap stitch". */
  readonly userApplication?: string;
}

/** A spec that does not hold together; `field` names what is wrong ("files[1].format", "pcapOverIp"). */
export class EgressSpecError extends EgressError {
  override readonly name = "EgressSpecError";
  readonly category = "bad-input";
  constructor(
    readonly field: string,
    detail: string,
    separator = ": ",
    detailFirst = false,
  ) {
    super(
      EgressErrorCode.BadOption,
      detailFirst ? `${detail}${separator}${field}` : `${field}${separator}${detail}`,
    );
  }
}

/** The checked spec: the policy built, every field in range. No output is opened. */
export interface CheckedEgressSpec {
  readonly spec: EgressSpec;
  readonly policy: ExportPolicy;
}

export function checkEgressSpec(spec: EgressSpec): CheckedEgressSpec {
  const files = spec.files ?? [];
  files.forEach((f, i) => {
    if (f.format !== "pcap" && f.format !== "pcapng")
      throw new EgressSpecError(`files[${i}].format`, "is pcap or pcapng");
  });
  const paths = new Set(files.map((f) => f.path));
  if (paths.size !== files.length) throw new EgressSpecError("files", "the same path is given twice");
  if (spec.rotating && spec.rotating.format !== "pcap" && spec.rotating.format !== "pcapng")
    throw new EgressSpecError("rotating.format", "is pcap or pcapng");
  const listen = spec.pcapOverIp;
  if (listen) {
    if (!Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65535)
      throw new EgressSpecError("pcapOverIp.port", `${listen.port} is not a port`);
    if (!Object.values(SlowClientPolicy).includes(listen.slowClient))
      throw new EgressSpecError(
        "pcapOverIp.slowClient",
        `is one of ${Object.values(SlowClientPolicy).join(", ")}`,
      );
    if (listen.resolution !== undefined && !["microsecond", "nanosecond"].includes(listen.resolution))
      throw new EgressSpecError("pcapOverIp.resolution", "is microsecond or nanosecond");
    const block = listen.blockTimeoutMs;
    if (block !== undefined && (!Number.isSafeInteger(block) || block < 1))
      throw new EgressSpecError("pcapOverIp.blockTimeoutMs", "is a whole number of milliseconds");
    const wait = listen.waitForClients ?? 0;
    if (!Number.isInteger(wait) || wait < 0)
      throw new EgressSpecError("pcapOverIp.waitForClients", "is a whole number");
    // More would never connect: the server turns clients beyond its limit away, and the run would wait forever.
    if (wait > DEFAULT_MAX_CLIENTS)
      throw new EgressSpecError(
        "pcapOverIp.waitForClients",
        `is at most ${DEFAULT_MAX_CLIENTS}, the server's client limit (${wait} would never all connect)`,
      );
  }
  const policy = createExportPolicy(spec.policy ?? {});
  if (policy.remap && spec.remapLog === undefined)
    throw new EgressSpecError("remapLog", "the policy remaps addresses: a mapping log is required");
  if (files.length === 0 && !spec.rotating && !listen && policy.targets.length === 0)
    throw new EgressSpecError(
      "outputs",
      "none given: a capture file, rotating files, PCAP-over-IP or a tunnel target",
    );
  return { spec, policy };
}

/**
 * "HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S][,options=a+b]" (the `--vxlan` / `--geneve` form,
 * also used in mirror-egress's environment): one tunnel target, checked on its own. Throws an `EgressError`
 * whose message names the setting.
 */
export function parseTunnelTarget(kind: "vxlan" | "geneve", text: string): TunnelTargetSpec {
  const [endpoint = "", ...params] = text.split(",");
  let address: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(endpoint);
  if (bracketed) {
    address = bracketed[1]!;
    portText = bracketed[2];
  } else if ((endpoint.match(/:/g) ?? []).length > 1) {
    address = endpoint; // a bare IPv6 address: no port
  } else {
    [address = "", portText] = endpoint.split(":");
  }
  const spec: Record<string, unknown> = { kind, address };
  if (portText !== undefined) spec["port"] = Number(portText);
  const numbers: Record<string, string> = { vni: "vni", "cleartext-vni": "cleartextVni", mtu: "mtu" };
  for (const p of params) {
    const eq = p.indexOf("=");
    const key = eq < 0 ? p : p.slice(0, eq);
    const value = eq < 0 ? "" : p.slice(eq + 1);
    const field = numbers[key];
    if (field !== undefined) {
      if (!/^\d+$/.test(value)) throw new EgressSpecError(key, "must be a number", " ");
      spec[field] = Number(value);
    } else if (key === "name" && value !== "") spec["name"] = value;
    else if (key === "options" && kind === "geneve")
      spec["geneveOptions"] = value === "" ? [] : value.split("+");
    else throw new EgressSpecError(`"${p}"`, "unknown setting", " ", true);
  }
  const target = spec as unknown as TunnelTargetSpec;
  try {
    createExportPolicy({ targets: [target] });
  } catch (err) {
    if (isEgressError(err))
      throw new EgressError(
        EgressErrorCode.BadTarget,
        err.message.replace(/^export policy: targets\[0\]\.?/, "").replace(/^: /, ""),
        { cause: err },
      );
    throw err;
  }
  return target;
}

/** "[ADDR:]PORT" (PCAP-over-IP's listen address); the address defaults to loopback. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535)
    throw new EgressSpecError("listen", `"${text}" is not [ADDR:]PORT (e.g. ${PCAP_OVER_IP_PORT})`);
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "127.0.0.1", port };
}
