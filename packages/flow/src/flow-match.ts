/**
 * Conditions on a flow, shared by the stitcher's flow filter (`createFlowFilter`) and the export policy:
 * `key=value` conditions joined by commas, all of which must hold, or `any`.
 *
 *   user=<glob> tenant=<glob> app=<glob> policy=<glob> device=<glob>   `*` matches any run, case-insensitive
 *   identity=<glob>          user or device
 *   port=<n>|<n>-<m>         server (destination) port, as the variant's frames show it (cleartext: mapped)
 *   src=<cidr>               client (source) address, IPv4 or IPv6, or a plain address
 *   dst=<cidr>               server (destination) address
 *   proto=tcp|udp
 *   variant=original|cleartext
 */
import { tryParseIpAddress } from "@cloudtap/packet";

/**
 * What a condition looks at. A conn-open record gives it (see `flowFactsOf`); so does a frame sink's flow
 * context, where each variant of a connection is its own flow.
 */
export interface FlowFacts {
  readonly attributes: Readonly<Record<string, string>>;
  readonly client: { readonly address: string; readonly port: number };
  /** The server as the flow's frames show it (a cleartext variant's port is the mapped one). */
  readonly server: { readonly address: string; readonly port: number };
  readonly transport: "tcp" | "udp";
  /** Absent before variants exist (the flow filter): `variant=` conditions then match "original". */
  readonly variant?: "original" | "cleartext";
}

export type FlowCondition = (flow: FlowFacts) => boolean;

/** Control characters (C0 and DEL) that a legitimate identity never holds. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * The name of the first attribute whose value holds a control character (U+0000-U+001F or U+007F: a
 * newline, say), if any. A glob matches the whole value, and `*` does not match across lines, so such a
 * value could pass a rule written for its visible part: the flow filter and the export policy both refuse
 * a flow for which this names an attribute, before their rules are read.
 */
export function attributeWithControlCharacter(
  attributes: Readonly<Record<string, string>>,
): string | undefined {
  for (const [name, value] of Object.entries(attributes)) if (CONTROL_CHARACTER.test(value)) return name;
  return undefined;
}

/** Why a match expression was rejected; the caller adds where it was written. */
import { FlowMatchSyntaxError } from "./errors.js";

export { FlowMatchSyntaxError };

function glob(pattern: string): (s: string | undefined) => boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      // Escape every regex metacharacter of the literal parts; only `*` is special in a glob.
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
    "i",
  );
  return (s) => s !== undefined && re.test(s);
}

/** A CIDR ("10.0.0.0/8", "2001:db8::/32") or a plain address, as a predicate on address text. */
export function cidrMatcher(text: string): (address: string) => boolean {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const net = tryParseIpAddress(addrText);
  if (!net) throw new FlowMatchSyntaxError(`"${addrText}" is not an IP address`);
  const bits = slash < 0 ? net.length * 8 : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > net.length * 8) {
    throw new FlowMatchSyntaxError(`bad prefix length in "${text}"`);
  }
  return (address) => {
    const a = tryParseIpAddress(address);
    if (!a || a.length !== net.length) return false;
    const full = bits >> 3;
    for (let i = 0; i < full; i++) if (a[i] !== net[i]) return false;
    const rest = bits & 7;
    if (rest === 0) return true;
    const mask = (0xff << (8 - rest)) & 0xff;
    return (a[full]! & mask) === (net[full]! & mask);
  };
}

function condition(text: string): FlowCondition {
  const eq = text.indexOf("=");
  if (eq < 1) throw new FlowMatchSyntaxError(`"${text}" is not key=value`);
  const key = text.slice(0, eq).trim().toLowerCase();
  const value = text.slice(eq + 1).trim();
  if (value === "") throw new FlowMatchSyntaxError(`"${key}" has no value`);
  switch (key) {
    case "user":
    case "tenant":
    case "app":
    case "policy":
    case "device": {
      const m = glob(value);
      return (f) => m(f.attributes[key]);
    }
    case "identity": {
      const m = glob(value);
      return (f) => m(f.attributes["user"]) || m(f.attributes["device"]);
    }
    case "port": {
      const r = /^(\d+)(?:-(\d+))?$/.exec(value);
      const lo = Number(r?.[1]);
      const hi = r?.[2] === undefined ? lo : Number(r[2]);
      if (!r || lo > 65535 || hi > 65535 || lo > hi) throw new FlowMatchSyntaxError(`bad port "${value}"`);
      return (f) => f.server.port >= lo && f.server.port <= hi;
    }
    case "src": {
      const m = cidrMatcher(value);
      return (f) => m(f.client.address);
    }
    case "dst": {
      const m = cidrMatcher(value);
      return (f) => m(f.server.address);
    }
    case "proto": {
      const p = value.toLowerCase();
      if (p !== "tcp" && p !== "udp") throw new FlowMatchSyntaxError("proto must be tcp or udp");
      return (f) => f.transport === p;
    }
    case "variant": {
      const v = value.toLowerCase();
      if (v !== "original" && v !== "cleartext")
        throw new FlowMatchSyntaxError("variant must be original or cleartext");
      return (f) => (f.variant ?? "original") === v;
    }
    default:
      throw new FlowMatchSyntaxError(`unknown key "${key}"`);
  }
}

/** Parses "key=value,key=value" (all must hold) or "any". Throws FlowMatchSyntaxError. */
export function parseFlowMatch(text: string): FlowCondition {
  const body = text.trim();
  if (body === "") throw new FlowMatchSyntaxError('empty match (write "any" to match every flow)');
  if (body.toLowerCase() === "any") return () => true;
  const conditions = body.split(",").map(condition);
  return (f) => conditions.every((c) => c(f));
}
