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
 *
 * A glob matches the whole value. A value holding a control character (U+0000-U+001F or U+007F: a newline,
 * say) is refused: when any rule is given, such a flow is rejected before the rules are read, so that
 * `user=alice@example.com\n` can neither pass `reject user=*@example.com` nor be taken for alice by an accept.
 */
import { type ConnOpenRecord, Transport } from "@cloudtap/tap-format";
import { FlowFilterSyntaxError, FlowMatchSyntaxError } from "./errors.js";
import {
  attributeWithControlCharacter,
  type FlowCondition,
  type FlowFacts,
  parseFlowMatch,
} from "./flow-match.js";

export { FlowFilterSyntaxError };

export interface FlowRule {
  readonly action: "accept" | "reject";
  readonly text: string;
  readonly matches: (open: ConnOpenRecord) => boolean;
}

export interface FlowFilter {
  readonly rules: readonly FlowRule[];
  /**
   * Whether the flow is selected, and which rule decided (undefined: the default, or `refused`: an
   * attribute value with a control character, named there).
   */
  decide(open: ConnOpenRecord): {
    readonly accept: boolean;
    readonly rule?: FlowRule;
    readonly refused?: string;
  };
}

/** The facts flow conditions look at, from a conn-open record. */
export function flowFactsOf(open: ConnOpenRecord): FlowFacts {
  return {
    attributes: open.attributes,
    client: open.client,
    server: open.server,
    transport: open.transport === Transport.Udp ? "udp" : "tcp",
  };
}

export function parseFlowRule(text: string): FlowRule {
  const m = /^\s*(accept|reject)\s+(.+?)\s*$/i.exec(text);
  if (!m) throw new FlowFilterSyntaxError(text, 'expected "accept <conditions>" or "reject <conditions>"');
  const action = m[1]!.toLowerCase() as "accept" | "reject";
  let condition: FlowCondition;
  try {
    condition = parseFlowMatch(m[2]!);
  } catch (err) {
    if (err instanceof FlowMatchSyntaxError) throw new FlowFilterSyntaxError(text, err.message);
    throw err;
  }
  return { action, text, matches: (o) => condition(flowFactsOf(o)) };
}

export function createFlowFilter(rules: readonly string[]): FlowFilter {
  const parsed = rules.map(parseFlowRule);
  const defaultAccept = !parsed.some((r) => r.action === "accept");
  return {
    rules: parsed,
    decide(open) {
      if (parsed.length > 0) {
        const bad = attributeWithControlCharacter(open.attributes);
        if (bad !== undefined) return { accept: false, refused: `${bad} holds a control character` };
      }
      for (const rule of parsed) if (rule.matches(open)) return { accept: rule.action === "accept", rule };
      return { accept: defaultAccept };
    },
  };
}
