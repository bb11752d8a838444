/**
 * The export policy: which tunnel targets each flow goes to, with which VNI, how fast, and under which
 * addresses. Ordered rules on flow attributes, first match wins; a flow no rule matches takes the default
 * route (every target, unless `defaultTargets` says otherwise).
 *
 * A rule's `targets` lists where copies go. An entry is a target name (a copy goes there) or a list of names
 * (a balancing group: one of them, chosen by the flow's symmetric hash, so both directions of a connection
 * reach the same one). `"action": "drop"` exports nothing of the flows the rule matches.
 *
 * A flow whose attribute value holds a control character (U+0000-U+001F or U+007F) is refused when the
 * policy has rules, before they are read, as the stitcher's `--filter` refuses it (one check for both,
 * @cloudtap/flow's `attributeWithControlCharacter`): a glob matches the whole value and `*` does not match
 * across lines, so `alice@example.com\n` would otherwise escape `{ "match": "user=*@example.com", "action":
 * "drop" }`. The decision says so (`refused`, a `RefusedAttributeError` naming the attribute) and exports
 * nothing; the tunnel output counts it (`flowsRefusedByPolicy`).
 *
 * The policy is data in, validated once: `createExportPolicy(spec)` (or `parseExportPolicy(jsonText)`)
 * throws an `ExportPolicyError` naming the first field that is wrong.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import { parseIpAddress } from "@cloudtap/packet";
import { ExportPolicyError, isEgressError, RefusedAttributeError } from "./errors.js";
import {
  attributeWithControlCharacter,
  type FlowCondition,
  FlowMatchSyntaxError,
  parseFlowMatch,
} from "./flow-match.js";
import {
  GENEVE_BASE_HEADER_BYTES,
  GENEVE_PORT,
  type GeneveOptionsConfig,
  geneveOptionsConfig,
} from "./geneve.js";
import { MAX_VNI, VXLAN_HEADER_BYTES, VXLAN_PORT } from "./vxlan.js";

export const TunnelKind = { Vxlan: "vxlan", Geneve: "geneve" } as const;
export type TunnelKind = (typeof TunnelKind)[keyof typeof TunnelKind];

/** What happens to a frame larger than a target's MTU allows (after encapsulation). */
export const OversizePolicy = { Truncate: "truncate", Drop: "drop" } as const;
export type OversizePolicy = (typeof OversizePolicy)[keyof typeof OversizePolicy];

/** What happens to a packet over a target's rate limit: it waits its turn, or it is dropped. */
export const OverLimitPolicy = { Wait: "wait", Drop: "drop" } as const;
export type OverLimitPolicy = (typeof OverLimitPolicy)[keyof typeof OverLimitPolicy];

export const DEFAULT_TARGET_MTU = 1500;
export const DEFAULT_VNI = { original: 1, cleartext: 2 } as const;
export const DEFAULT_MAX_QUEUE_BYTES = 32 * 1024 * 1024;
export const MIN_QUEUE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_MAPPINGS = 1 << 20;
const ETHERNET_HEADER_BYTES = 14;
const UDP_HEADER_BYTES = 8;

/** A target as written in a policy file (JSON) or made from a command-line flag. */
export interface TunnelTargetSpec {
  /** Unique within the policy; default "<kind>:<address>:<port>". */
  readonly name?: string;
  readonly kind: TunnelKind;
  /** IPv4 or IPv6 literal, or a host name (resolve it with `resolveExportPolicy` before sending). */
  readonly address: string;
  /** UDP destination port; default 4789 (VXLAN) or 6081 (GENEVE). */
  readonly port?: number;
  /**
   * Largest outer IP packet on the path to the target; default 1500, at least 576 (which leaves at least
   * 254 bytes for the inner IP packet under the largest encapsulation: IPv6, GENEVE with 252 option bytes).
   */
  readonly mtu?: number;
  /** VNI of original flows; default the policy's `vni.original`. */
  readonly vni?: number;
  /** VNI of cleartext flows; default `vni + 1` when `vni` is given, else the policy's `vni.cleartext`. */
  readonly cleartextVni?: number;
  /** Default "truncate". */
  readonly oversize?: OversizePolicy;
  /** Inner frame bytes kept when truncating; default (and at most) what fits the MTU. */
  readonly snapLength?: number;
  readonly maxPacketsPerSecond?: number;
  /** Counted over the outer IP packet (outer IP, UDP, tunnel header and inner frame). */
  readonly maxBitsPerSecond?: number;
  /** Default "wait". */
  readonly overLimit?: OverLimitPolicy;
  /** Cap on datagrams built but not yet sent to this target; frames beyond it are dropped and counted. */
  readonly maxQueueBytes?: number;
  /** GENEVE only: which metadata options to send (default: connection-id, variant, user, tenant, app). */
  readonly geneveOptions?: readonly string[];
  /** GENEVE only: bound on the options of one packet (multiple of 4, at most 252; default 128). */
  readonly maxOptionBytes?: number;
  /** GENEVE only: the option class (default 0xFFCA, Experimental Use range). */
  readonly optionClass?: number;
}

/** A target name, or a list of names balanced by flow hash. */
export type TargetRef = string | readonly string[];

export interface ExportRuleSpec {
  /** "key=value,..." (see flow-match.ts) or "any". */
  readonly match: string;
  /** Default "export". */
  readonly action?: "export" | "drop";
  /** Default: the policy's default targets. */
  readonly targets?: readonly TargetRef[];
  /** VNI of every flow this rule matches (either variant); default: the target's VNI for the variant. */
  readonly vni?: number;
}

export type PacingSpec =
  | { readonly mode: "asap" }
  /** The original inter-packet timing; `speed` 2 replays twice as fast, 0.5 at half speed. Default 1. */
  | { readonly mode: "original"; readonly speed?: number };

export interface RemapSpec {
  /** CIDRs (at most one IPv4 and one IPv6) that client addresses are mapped into. */
  readonly client?: string | readonly string[];
  /** CIDRs that server addresses are mapped into. */
  readonly server?: string | readonly string[];
  /** Cap on distinct addresses mapped per role; default 1,048,576. */
  readonly maxMappings?: number;
}

export interface ExportPolicySpec {
  readonly targets?: readonly TunnelTargetSpec[];
  readonly rules?: readonly ExportRuleSpec[];
  readonly defaultTargets?: readonly TargetRef[];
  readonly vni?: { readonly original?: number; readonly cleartext?: number };
  readonly pacing?: PacingSpec;
  readonly remap?: RemapSpec;
}

export interface TunnelTarget {
  readonly name: string;
  readonly kind: TunnelKind;
  readonly address: string;
  readonly port: number;
  readonly mtu: number;
  readonly vni: number;
  readonly cleartextVni: number;
  readonly oversize: OversizePolicy;
  readonly snapLength: number | undefined;
  readonly maxPacketsPerSecond: number | undefined;
  readonly maxBitsPerSecond: number | undefined;
  readonly overLimit: OverLimitPolicy;
  readonly maxQueueBytes: number;
  /** GENEVE targets only. */
  readonly geneve: GeneveOptionsConfig | undefined;
}

export interface Pacing {
  readonly mode: "asap" | "original";
  readonly speed: number;
}

export interface RemapConfig {
  readonly client: readonly string[];
  readonly server: readonly string[];
  readonly maxMappings: number;
}

export interface ExportRule {
  readonly index: number;
  readonly match: string;
  readonly action: "export" | "drop";
  /** Groups of target indexes: a copy goes to one member of each group. */
  readonly groups: readonly (readonly number[])[];
  readonly vni: number | undefined;
  readonly matches: FlowCondition;
}

export interface ExportRoute {
  readonly target: number;
  readonly vni: number;
  /** The feed this route carries when it is not the flow's own variant (a plain flow's cleartext copy). */
  readonly variant?: "original" | "cleartext";
}

export interface ExportDecision {
  /** The rule that matched; undefined for the default route. */
  readonly rule: ExportRule | undefined;
  /** Empty when the flow is dropped (a drop rule, a default route without targets, or refused). */
  readonly routes: readonly ExportRoute[];
  /**
   * Set when the flow was refused before the rules were read (an attribute value with a control
   * character, when the policy has rules): it goes nowhere.
   */
  readonly refused?: RefusedAttributeError;
}

export interface ExportPolicy {
  readonly targets: readonly TunnelTarget[];
  readonly rules: readonly ExportRule[];
  readonly defaultGroups: readonly (readonly number[])[];
  readonly pacing: Pacing;
  readonly remap: RemapConfig | undefined;
  /** The spec this policy was made from (with defaults not filled in). */
  readonly spec: ExportPolicySpec;
  /** Routes of a flow; `hash` is its symmetric flow hash (picks the member of each balancing group). */
  decide(flow: FrameFlowContext, hash: number): ExportDecision;
}

type Json = unknown;

function isRecord(v: Json): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(path: string, v: Record<string, Json>, allowed: readonly string[]): void {
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      throw new ExportPolicyError(`${path}.${k}`, `unknown field (known: ${allowed.join(", ")})`);
  }
}

function integer(path: string, v: Json, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ExportPolicyError(path, `${JSON.stringify(v)} is not an integer in ${min}..${max}`);
  }
  return v;
}

function positive(path: string, v: Json): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ExportPolicyError(path, `${JSON.stringify(v)} is not a positive number`);
  }
  return v;
}

function text(path: string, v: Json): string {
  if (typeof v !== "string" || v.trim() === "")
    throw new ExportPolicyError(path, "expected a non-empty string");
  return v;
}

function oneOf<T extends string>(path: string, v: Json, values: readonly T[]): T {
  if (typeof v !== "string" || !values.includes(v as T)) {
    throw new ExportPolicyError(path, `${JSON.stringify(v)} is not one of ${values.join(", ")}`);
  }
  return v as T;
}

function stringList(path: string, v: Json): string[] {
  if (typeof v === "string") return [v];
  if (!Array.isArray(v)) throw new ExportPolicyError(path, "expected a string or a list of strings");
  return v.map((x, i) => text(`${path}[${i}]`, x));
}

/** The IP version of an address literal; undefined for a host name. */
export function addressFamily(address: string): 4 | 6 | undefined {
  try {
    return parseIpAddress(address).length === 4 ? 4 : 6;
  } catch {
    return undefined;
  }
}

// A DNS name: labels of letters, digits and hyphens (RFC 1123), dot-separated.
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

const TARGET_KEYS = [
  "name",
  "kind",
  "address",
  "port",
  "mtu",
  "vni",
  "cleartextVni",
  "oversize",
  "snapLength",
  "maxPacketsPerSecond",
  "maxBitsPerSecond",
  "overLimit",
  "maxQueueBytes",
  "geneveOptions",
  "maxOptionBytes",
  "optionClass",
] as const;

/** Bytes one target adds to an inner IP packet: outer IP, UDP, tunnel header (options at their bound), inner Ethernet. */
export function tunnelOverheadBytes(target: Pick<TunnelTarget, "kind" | "address" | "geneve">): number {
  const family = addressFamily(target.address);
  if (family === undefined) {
    throw new ExportPolicyError(
      `target ${target.address}`,
      "the address is a host name: resolve the policy (resolveExportPolicy) before computing sizes",
    );
  }
  return (family === 4 ? 20 : 40) + UDP_HEADER_BYTES + tunnelHeaderBound(target) + ETHERNET_HEADER_BYTES;
}

/** The largest tunnel header a target sends (GENEVE: base header plus the options' bound). */
export function tunnelHeaderBound(target: Pick<TunnelTarget, "kind" | "geneve">): number {
  return target.kind === TunnelKind.Vxlan
    ? VXLAN_HEADER_BYTES
    : GENEVE_BASE_HEADER_BYTES + (target.geneve?.maxOptionBytes ?? 0);
}

/** The largest inner IP packet a target carries without fragmenting the outer packet. */
export function innerIpMtu(target: TunnelTarget): number {
  return target.mtu - tunnelOverheadBytes(target);
}

/**
 * The stitcher's `encapsulationBytes` for a link MTU of `linkMtu` (its `mtu` option), so that every segment
 * it builds fits every target after encapsulation: `linkMtu` minus the smallest inner IP MTU of the targets
 * (0 when no target is tighter than the link). Targets must have IP literal addresses.
 */
export function encapsulationBytesFor(targets: readonly TunnelTarget[], linkMtu: number): number {
  let smallest = linkMtu;
  for (const t of targets) smallest = Math.min(smallest, innerIpMtu(t));
  return linkMtu - smallest;
}

function target(path: string, v: Json, defaults: { original: number; cleartext: number }): TunnelTarget {
  if (!isRecord(v)) throw new ExportPolicyError(path, "expected an object");
  checkKeys(path, v, TARGET_KEYS);
  const kind = oneOf(`${path}.kind`, v["kind"], [TunnelKind.Vxlan, TunnelKind.Geneve]);
  const address = text(`${path}.address`, v["address"]).trim();
  if (addressFamily(address) === undefined && !HOST_NAME.test(address)) {
    throw new ExportPolicyError(`${path}.address`, `"${address}" is neither an IP address nor a host name`);
  }
  const port =
    v["port"] === undefined
      ? kind === TunnelKind.Vxlan
        ? VXLAN_PORT
        : GENEVE_PORT
      : integer(`${path}.port`, v["port"], 1, 65535);
  const name =
    v["name"] === undefined
      ? `${kind}:${address.includes(":") ? `[${address}]` : address}:${port}`
      : text(`${path}.name`, v["name"]);
  const mtu = v["mtu"] === undefined ? DEFAULT_TARGET_MTU : integer(`${path}.mtu`, v["mtu"], 576, 65535);
  const vniGiven = v["vni"] !== undefined;
  const vni = vniGiven ? integer(`${path}.vni`, v["vni"], 0, MAX_VNI) : defaults.original;
  const cleartextVni =
    v["cleartextVni"] !== undefined
      ? integer(`${path}.cleartextVni`, v["cleartextVni"], 0, MAX_VNI)
      : vniGiven
        ? vni + 1
        : defaults.cleartext;
  if (cleartextVni > MAX_VNI) {
    throw new ExportPolicyError(`${path}.vni`, `${vni} leaves no VNI for cleartext flows: give cleartextVni`);
  }
  let geneve: GeneveOptionsConfig | undefined;
  const geneveKeys = ["geneveOptions", "maxOptionBytes", "optionClass"] as const;
  if (kind === TunnelKind.Geneve) {
    try {
      geneve = geneveOptionsConfig(
        {
          ...(v["geneveOptions"] === undefined
            ? {}
            : {
                options: stringList(
                  `${path}.geneveOptions`,
                  v["geneveOptions"],
                ) as GeneveOptionsConfig["options"],
              }),
          ...(v["maxOptionBytes"] === undefined ? {} : { maxOptionBytes: v["maxOptionBytes"] as number }),
          ...(v["optionClass"] === undefined ? {} : { optionClass: v["optionClass"] as number }),
        },
        path,
      );
    } catch (err) {
      if (err instanceof ExportPolicyError || !isEgressError(err)) throw err;
      throw new ExportPolicyError(path, err.message.replace(`${path}: `, ""), { cause: err });
    }
  } else {
    for (const k of geneveKeys) {
      if (v[k] !== undefined) throw new ExportPolicyError(`${path}.${k}`, "only GENEVE targets take options");
    }
  }
  const snapLength =
    v["snapLength"] === undefined ? undefined : integer(`${path}.snapLength`, v["snapLength"], 64, 65535);
  const t: TunnelTarget = {
    name,
    kind,
    address,
    port,
    mtu,
    vni,
    cleartextVni,
    oversize:
      v["oversize"] === undefined
        ? OversizePolicy.Truncate
        : oneOf(`${path}.oversize`, v["oversize"], [OversizePolicy.Truncate, OversizePolicy.Drop]),
    snapLength,
    maxPacketsPerSecond:
      v["maxPacketsPerSecond"] === undefined
        ? undefined
        : positive(`${path}.maxPacketsPerSecond`, v["maxPacketsPerSecond"]),
    maxBitsPerSecond:
      v["maxBitsPerSecond"] === undefined
        ? undefined
        : positive(`${path}.maxBitsPerSecond`, v["maxBitsPerSecond"]),
    overLimit:
      v["overLimit"] === undefined
        ? OverLimitPolicy.Wait
        : oneOf(`${path}.overLimit`, v["overLimit"], [OverLimitPolicy.Wait, OverLimitPolicy.Drop]),
    maxQueueBytes:
      v["maxQueueBytes"] === undefined
        ? DEFAULT_MAX_QUEUE_BYTES
        : integer(`${path}.maxQueueBytes`, v["maxQueueBytes"], MIN_QUEUE_BYTES, 2 ** 40),
    geneve,
  };
  return t;
}

function groups(path: string, v: Json, names: ReadonlyMap<string, number>): number[][] {
  if (!Array.isArray(v))
    throw new ExportPolicyError(path, "expected a list of target names (or lists of names)");
  return v.map((entry, i) => {
    const members = typeof entry === "string" ? [entry] : entry;
    if (!Array.isArray(members) || members.length === 0) {
      throw new ExportPolicyError(`${path}[${i}]`, "expected a target name or a non-empty list of names");
    }
    return members.map((m, j) => {
      const at = names.get(text(`${path}[${i}]${typeof entry === "string" ? "" : `[${j}]`}`, m));
      if (at === undefined) {
        throw new ExportPolicyError(
          `${path}[${i}]`,
          `no target named "${m}" (targets: ${[...names.keys()].join(", ") || "none"})`,
        );
      }
      return at;
    });
  });
}

function cidrList(path: string, v: Json): string[] {
  if (v === undefined) return [];
  const list = stringList(path, v);
  const families = new Set<number>();
  for (const [i, c] of list.entries()) {
    const slash = c.indexOf("/");
    const family = addressFamily(slash < 0 ? c : c.slice(0, slash));
    const bits = slash < 0 ? Number.NaN : Number(c.slice(slash + 1));
    if (family === undefined || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw new ExportPolicyError(`${path}[${i}]`, `"${c}" is not a CIDR (e.g. 100.64.0.0/10, fd00:7a::/64)`);
    }
    if (families.has(family)) throw new ExportPolicyError(`${path}[${i}]`, `a second IPv${family} range`);
    families.add(family);
  }
  return list;
}

/** Validates a policy spec (parsed JSON or built from flags) and makes the policy. */
export function createExportPolicy(spec: ExportPolicySpec): ExportPolicy {
  const v: Json = spec;
  if (!isRecord(v)) throw new ExportPolicyError("policy", "expected an object");
  checkKeys("policy", v, ["targets", "rules", "defaultTargets", "vni", "pacing", "remap"]);
  let vniDefaults: { original: number; cleartext: number } = { ...DEFAULT_VNI };
  if (v["vni"] !== undefined) {
    const n = v["vni"];
    if (!isRecord(n)) throw new ExportPolicyError("vni", "expected { original, cleartext }");
    checkKeys("vni", n, ["original", "cleartext"]);
    vniDefaults = {
      original:
        n["original"] === undefined
          ? DEFAULT_VNI.original
          : integer("vni.original", n["original"], 0, MAX_VNI),
      cleartext:
        n["cleartext"] === undefined
          ? DEFAULT_VNI.cleartext
          : integer("vni.cleartext", n["cleartext"], 0, MAX_VNI),
    };
  }
  const targetList = v["targets"] ?? [];
  if (!Array.isArray(targetList)) throw new ExportPolicyError("targets", "expected a list");
  const targets = targetList.map((t, i) => target(`targets[${i}]`, t, vniDefaults));
  const names = new Map<string, number>();
  for (const [i, t] of targets.entries()) {
    if (names.has(t.name)) throw new ExportPolicyError(`targets[${i}].name`, `"${t.name}" is used twice`);
    names.set(t.name, i);
  }
  const defaultGroups =
    v["defaultTargets"] === undefined
      ? targets.map((_, i) => [i])
      : groups("defaultTargets", v["defaultTargets"], names);
  const ruleList = v["rules"] ?? [];
  if (!Array.isArray(ruleList)) throw new ExportPolicyError("rules", "expected a list");
  const rules: ExportRule[] = ruleList.map((r, i) => {
    const path = `rules[${i}]`;
    if (!isRecord(r)) throw new ExportPolicyError(path, "expected an object");
    checkKeys(path, r, ["match", "action", "targets", "vni"]);
    const match = text(`${path}.match`, r["match"]);
    let matches: FlowCondition;
    try {
      matches = parseFlowMatch(match);
    } catch (err) {
      if (err instanceof FlowMatchSyntaxError)
        throw new ExportPolicyError(`${path}.match`, err.message, { cause: err });
      throw err;
    }
    const action =
      r["action"] === undefined
        ? "export"
        : oneOf(`${path}.action`, r["action"], ["export", "drop"] as const);
    if (action === "drop" && (r["targets"] !== undefined || r["vni"] !== undefined)) {
      throw new ExportPolicyError(path, "a drop rule takes no targets or vni");
    }
    return {
      index: i,
      match,
      action,
      groups: r["targets"] === undefined ? defaultGroups : groups(`${path}.targets`, r["targets"], names),
      vni: r["vni"] === undefined ? undefined : integer(`${path}.vni`, r["vni"], 0, MAX_VNI),
      matches,
    };
  });
  let pacing: Pacing = { mode: "asap", speed: 1 };
  if (v["pacing"] !== undefined) {
    const p = v["pacing"];
    if (!isRecord(p))
      throw new ExportPolicyError("pacing", 'expected { "mode": "asap" | "original", "speed"? }');
    checkKeys("pacing", p, ["mode", "speed"]);
    const mode = oneOf("pacing.mode", p["mode"], ["asap", "original"] as const);
    if (mode === "asap" && p["speed"] !== undefined)
      throw new ExportPolicyError("pacing.speed", 'only with mode "original"');
    pacing = { mode, speed: p["speed"] === undefined ? 1 : positive("pacing.speed", p["speed"]) };
  }
  let remap: RemapConfig | undefined;
  if (v["remap"] !== undefined) {
    const m = v["remap"];
    if (!isRecord(m)) throw new ExportPolicyError("remap", "expected { client?, server?, maxMappings? }");
    checkKeys("remap", m, ["client", "server", "maxMappings"]);
    remap = {
      client: cidrList("remap.client", m["client"]),
      server: cidrList("remap.server", m["server"]),
      maxMappings:
        m["maxMappings"] === undefined
          ? DEFAULT_MAX_MAPPINGS
          : integer("remap.maxMappings", m["maxMappings"], 1, 2 ** 26),
    };
    if (remap.client.length === 0 && remap.server.length === 0) {
      throw new ExportPolicyError("remap", "give client and/or server ranges");
    }
  }

  const route = (flow: FrameFlowContext, hash: number, rule: ExportRule | undefined): ExportDecision => {
    if (rule?.action === "drop") return { rule, routes: [] };
    const groupList = rule ? rule.groups : defaultGroups;
    const routes: ExportRoute[] = [];
    for (const g of groupList) {
      const t = g.length === 1 ? g[0]! : g[hash % g.length]!;
      if (routes.some((r) => r.target === t)) continue;
      const tt = targets[t]!;
      routes.push({ target: t, vni: rule?.vni ?? (flow.variant === "cleartext" ? tt.cleartextVni : tt.vni) });
    }
    return { rule, routes };
  };
  return {
    targets,
    rules,
    defaultGroups,
    pacing,
    remap,
    spec,
    decide(flow, hash) {
      if (rules.length > 0) {
        const bad = attributeWithControlCharacter(flow.attributes);
        if (bad !== undefined)
          return { rule: undefined, routes: [], refused: new RefusedAttributeError(bad) };
      }
      const one = (f: FrameFlowContext) => {
        for (const rule of rules) if (rule.matches(f)) return route(f, hash, rule);
        return route(f, hash, undefined);
      };
      const first = one(flow);
      if (!flow.plain || flow.variant !== "original") return first;
      // A flow never encrypted is its own cleartext: it goes to the cleartext feed as well, as the rules
      // for a cleartext flow say, so that each feed is complete on its own.
      const clear = one({ ...flow, variant: "cleartext" });
      const routes = [...first.routes];
      for (const r of clear.routes)
        if (!routes.some((x) => x.target === r.target && x.vni === r.vni))
          routes.push({ ...r, variant: "cleartext" });
      return { rule: first.rule ?? clear.rule, routes };
    },
  };
}

/** Parses a policy file's text (JSON). */
export function parseExportPolicy(jsonText: string): ExportPolicy {
  let spec: unknown;
  try {
    spec = JSON.parse(jsonText);
  } catch (err) {
    throw new ExportPolicyError("policy", `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return createExportPolicy(spec as ExportPolicySpec);
}

/**
 * The same policy with every target's host name replaced by an address `resolve` returns (targets given as
 * IP literals stay as they are). `resolve` is the platform's resolver (the node adapter passes dns.lookup).
 */
export async function resolveExportPolicy(
  policy: ExportPolicy,
  resolve: (hostName: string) => Promise<string>,
): Promise<ExportPolicy> {
  const targets = await Promise.all(
    (policy.spec.targets ?? []).map(async (t, i) => {
      if (addressFamily(t.address.trim()) !== undefined) return t;
      let address: string;
      try {
        address = await resolve(t.address.trim());
      } catch (err) {
        throw new ExportPolicyError(
          `targets[${i}].address`,
          `cannot resolve "${t.address}": ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      // Keep the name the rules refer to.
      return { ...t, address, name: policy.targets[i]!.name };
    }),
  );
  return createExportPolicy({ ...policy.spec, targets });
}
