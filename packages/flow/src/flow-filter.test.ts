import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ConnOpenRecord, Transport } from "@cloudtap/tap-format";
import { createFlowFilter, FlowFilterSyntaxError } from "./flow-filter.js";
import { cidrMatcher, FlowMatchSyntaxError } from "./flow-match.js";

const flow = (over: Partial<ConnOpenRecord> = {}): ConnOpenRecord => ({
  type: "conn-open",
  connId: "0".repeat(32),
  timestampNs: 0n,
  transport: Transport.Tcp,
  ipVersion: 4,
  client: { address: "10.20.30.40", port: 50000 },
  server: { address: "203.0.113.9", port: 443 },
  midstream: false,
  tcp: {},
  attributes: { user: "Alice@Example.com", app: "Slack", device: "LT-0042", tenant: "acme" },
  ...over,
});

describe("flow - filter rules", () => {
  const cases: { rules: string[]; flow: ConnOpenRecord; want: boolean }[] = [
    { rules: [], flow: flow(), want: true },
    { rules: ["accept port=443"], flow: flow(), want: true },
    { rules: ["accept port=443"], flow: flow({ server: { address: "203.0.113.9", port: 80 } }), want: false },
    { rules: ["reject port=22"], flow: flow(), want: true },
    {
      rules: ["accept port=8000-8999"],
      flow: flow({ server: { address: "1.2.3.4", port: 8443 } }),
      want: true,
    },
    { rules: ["accept user=*@example.com"], flow: flow(), want: true },
    { rules: ["accept identity=lt-*"], flow: flow(), want: true },
    { rules: ["reject app=slack", "accept any"], flow: flow(), want: false },
    { rules: ["accept src=10.0.0.0/8,proto=tcp"], flow: flow(), want: true },
    { rules: ["accept src=10.0.0.0/8,proto=udp"], flow: flow(), want: false },
    { rules: ["accept src=10.20.30.32/28"], flow: flow(), want: true },
    { rules: ["accept src=10.20.30.48/28"], flow: flow(), want: false },
    {
      rules: ["accept src=fd00:1::/32"],
      flow: flow({
        ipVersion: 6,
        client: { address: "fd00:1:2::42", port: 1 },
        server: { address: "2001:db8::1", port: 443 },
      }),
      want: true,
    },
    { rules: ["accept src=fd00::/8"], flow: flow(), want: false },
    { rules: ["accept dst=203.0.113.0/24", "reject any"], flow: flow(), want: true },
    { rules: ["accept tenant=other", "reject user=*"], flow: flow(), want: false },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.rules)} -> ${c.want}`, () => {
      assert.equal(createFlowFilter(c.rules).decide(c.flow).accept, c.want);
    });
  }
  it("flow - a value with a newline (or any control character) is refused, whatever the rules say", () => {
    const hostile = flow({ attributes: { user: "mallory@example.com\n" } });
    for (const rules of [
      ["reject user=*@example.com"],
      ["accept user=mallory@example.com"],
      ["accept any"],
    ]) {
      const d = createFlowFilter(rules).decide(hostile);
      assert.equal(d.accept, false, JSON.stringify(rules));
      assert.equal(d.refused, "user holds a control character");
    }
    const tab = flow({ attributes: { user: "alice@example.com", app: "x\u007f" } });
    assert.equal(createFlowFilter(["accept user=alice@example.com"]).decide(tab).accept, false);
    // Without rules nothing is filtered (nothing to escape).
    assert.equal(createFlowFilter([]).decide(hostile).accept, true);
    // The glob still matches the whole value: a value that merely ends in the pattern's text is no match.
    assert.equal(
      createFlowFilter(["accept user=*@example.com"]).decide(
        flow({ attributes: { user: "a@example.com.evil" } }),
      ).accept,
      false,
    );
  });

  it("names the problem in a bad rule", () => {
    for (const bad of [
      "allow port=1",
      "accept port=70000",
      "accept src=10.0.0.0/33",
      "accept src=010.0.0.0/8",
      "accept colour=red",
      "accept proto=icmp",
    ]) {
      assert.throws(() => createFlowFilter([bad]), FlowFilterSyntaxError, bad);
    }
  });
});

describe("flow - address text in conditions", () => {
  it("flow - a CIDR is parsed by packet's strict rules and matches either text form of a mapped address", () => {
    assert.throws(() => cidrMatcher("010.0.0.0/8"), FlowMatchSyntaxError);
    const mapped = cidrMatcher("::ffff:10.0.0.0/104");
    assert.equal(mapped("::ffff:10.1.2.3"), true);
    assert.equal(mapped("::ffff:a01:203"), true);
    assert.equal(mapped("::ffff:11.1.2.3"), false);
    // An address that does not parse (a leading-zero octet) matches nothing rather than a guess.
    assert.equal(cidrMatcher("10.0.0.0/8")("010.1.2.3"), false);
  });
});
