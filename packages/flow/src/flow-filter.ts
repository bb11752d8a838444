/**
 * Flow selection rules, after the tapper's own selection criteria (user or identity, destination TCP port,
 * source subnet) plus protocol and the other identity attributes. Rules are ordered; the first rule that
 * matches decides. When none matches, the flow is rejected if any rule is an `accept` (a list of accepts is
 * an allow-list) and accepted otherwise (a list of rejects is a deny-list).
 *
 * Syntax, one rule per string:   accept|reject <condition>[,<condition>...]   or   accept|reject any
 *   user=<glob>  tenant=<glob>  app=<glob>  policy=<glob>  device=<glob>   (`*` matches any run of characters,
 *                                                                          case-insensitive)
 *   identity=<glob>        user or device
 *   port=<n>|<n>-<m>       server (destination) port
 *   src=<cidr>             client (source) address, IPv4 or IPv6 CIDR or a plain address
 *   dst=<cidr>             server (destination) address
 *   proto=tcp|udp
 * All conditions of one rule must hold.
 */
import { type ConnOpenRecord, parseIp, Transport } from "@cloudtap/tap-format";

export class FlowFilterSyntaxError extends Error {
  override readonly name = "FlowFilterSyntaxError";
  constructor(
    readonly rule: string,
    detail: string,
  ) {
    super(`bad filter rule "${rule}": ${detail}`);
  }
}

type Condition = (open: ConnOpenRecord) => boolean;

export interface FlowRule {
  readonly action: "accept" | "reject";
  readonly text: string;
  readonly matches: (open: ConnOpenRecord) => boolean;
}

export interface FlowFilter {
  readonly rules: readonly FlowRule[];
  /** Whether the flow is selected, and which rule decided (undefined: the default). */
  decide(open: ConnOpenRecord): { readonly accept: boolean; readonly rule?: FlowRule };
}

function glob(pattern: string): (s: string | undefined) => boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
    "i",
  );
  return (s) => s !== undefined && re.test(s);
}

function cidr(rule: string, text: string): (address: string) => boolean {
  const [addr, lenText] = text.split("/");
  const net = parseIp(addr ?? "");
  if (!net) throw new FlowFilterSyntaxError(rule, `"${addr}" is not an IP address`);
  const bits = lenText === undefined ? net.length * 8 : Number(lenText);
  if (!Number.isInteger(bits) || bits < 0 || bits > net.length * 8) {
    throw new FlowFilterSyntaxError(rule, `bad prefix length "${lenText}"`);
  }
  return (address) => {
    const a = parseIp(address);
    if (!a || a.length !== net.length) return false;
    const full = bits >> 3;
    for (let i = 0; i < full; i++) if (a[i] !== net[i]) return false;
    const rest = bits & 7;
    if (rest === 0) return true;
    const mask = (0xff << (8 - rest)) & 0xff;
    return (a[full]! & mask) === (net[full]! & mask);
  };
}

function condition(rule: string, text: string): Condition {
  const eq = text.indexOf("=");
  if (eq < 1) throw new FlowFilterSyntaxError(rule, `"${text}" is not key=value`);
  const key = text.slice(0, eq).trim().toLowerCase();
  const value = text.slice(eq + 1).trim();
  if (value === "") throw new FlowFilterSyntaxError(rule, `"${key}" has no value`);
  switch (key) {
    case "user":
    case "tenant":
    case "app":
    case "policy":
    case "device": {
      const m = glob(value);
      return (o) => m(o.attributes[key]);
    }
    case "identity": {
      const m = glob(value);
      return (o) => m(o.attributes["user"]) || m(o.attributes["device"]);
    }
    case "port": {
      const r = /^(\d+)(?:-(\d+))?$/.exec(value);
      const lo = Number(r?.[1]);
      const hi = r?.[2] === undefined ? lo : Number(r[2]);
      if (!r || lo > 65535 || hi > 65535 || lo > hi)
        throw new FlowFilterSyntaxError(rule, `bad port "${value}"`);
      return (o) => o.server.port >= lo && o.server.port <= hi;
    }
    case "src": {
      const m = cidr(rule, value);
      return (o) => m(o.client.address);
    }
    case "dst": {
      const m = cidr(rule, value);
      return (o) => m(o.server.address);
    }
    case "proto": {
      const p = value.toLowerCase();
      if (p !== "tcp" && p !== "udp") throw new FlowFilterSyntaxError(rule, `proto must be tcp or udp`);
      const t = p === "tcp" ? Transport.Tcp : Transport.Udp;
      return (o) => o.transport === t;
    }
    default:
      throw new FlowFilterSyntaxError(rule, `unknown key "${key}"`);
  }
}

export function parseFlowRule(text: string): FlowRule {
  const m = /^\s*(accept|reject)\s+(.+?)\s*$/i.exec(text);
  if (!m) throw new FlowFilterSyntaxError(text, 'expected "accept <conditions>" or "reject <conditions>"');
  const action = m[1]!.toLowerCase() as "accept" | "reject";
  const body = m[2]!;
  if (body.toLowerCase() === "any") return { action, text, matches: () => true };
  const conds = body.split(",").map((c) => condition(text, c));
  return { action, text, matches: (o) => conds.every((c) => c(o)) };
}

export function createFlowFilter(rules: readonly string[]): FlowFilter {
  const parsed = rules.map(parseFlowRule);
  const defaultAccept = !parsed.some((r) => r.action === "accept");
  return {
    rules: parsed,
    decide(open) {
      for (const rule of parsed) if (rule.matches(open)) return { accept: rule.action === "accept", rule };
      return { accept: defaultAccept };
    },
  };
}
