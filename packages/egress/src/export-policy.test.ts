import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EgressErrorCode, ExportPolicyError, RefusedAttributeError } from "./errors.js";
import {
  createExportPolicy,
  type ExportPolicySpec,
  encapsulationBytesFor,
  innerIpMtu,
  parseExportPolicy,
  resolveExportPolicy,
  tunnelOverheadBytes,
} from "./export-policy.js";
import { flowHash } from "./flow-hash.js";
import { attributeWithControlCharacter } from "./flow-match.js";
import { describeOutputReport } from "./output-report-lines.js";
import { flowContext, framesOf, ManualClock, MemoryTransport } from "./test-frames.js";
import { TunnelOutput } from "./tunnel-output.js";

const spec: ExportPolicySpec = {
  targets: [
    { name: "ids", kind: "vxlan", address: "10.0.0.1", vni: 100 },
    { name: "ndr-a", kind: "geneve", address: "10.0.0.2" },
    { name: "ndr-b", kind: "geneve", address: "10.0.0.3" },
  ],
  vni: { original: 500, cleartext: 600 },
  rules: [
    { match: "port=53", action: "drop" },
    { match: "user=*@example.com,variant=cleartext", targets: ["ids"], vni: 4242 },
    { match: "src=10.9.0.0/16", targets: [["ndr-a", "ndr-b"]] },
    { match: "tenant=globex", targets: ["ids", ["ndr-a", "ndr-b"]] },
  ],
  defaultTargets: ["ids"],
};

describe("egress - export policy", () => {
  const policy = createExportPolicy(spec);
  const names = (flow: ReturnType<typeof flowContext>) =>
    policy.decide(flow, flowHash(flow)).routes.map((r) => `${policy.targets[r.target]!.name}/${r.vni}`);

  it("egress - ordered rules, first match wins; VNIs per target and variant, rule VNI overrides", () => {
    const table: { flow: ReturnType<typeof flowContext>; want: string[]; why: string }[] = [
      { flow: flowContext({ server: { address: "192.0.2.53", port: 53 } }), want: [], why: "drop rule" },
      { flow: flowContext({ variant: "cleartext" }), want: ["ids/4242"], why: "rule VNI" },
      { flow: flowContext(), want: ["ids/100"], why: "default route, target VNI" },
      {
        flow: flowContext({ variant: "cleartext", attributes: { user: "bob@other.org" } }),
        want: ["ids/101"],
        why: "cleartext VNI defaults to vni + 1",
      },
      {
        flow: flowContext({ attributes: { tenant: "globex" }, variant: "cleartext" }),
        want: ["ids/101", expect("ndr", 600)],
        why: "copy to ids and one of the balanced pair, policy default cleartext VNI",
      },
    ];
    for (const { flow, want, why } of table) {
      const got = names(flow);
      assert.equal(got.length, want.length, `${why}: ${got.join(" ")}`);
      for (const [i, w] of want.entries()) assert.match(got[i]!, new RegExp(`^${w}$`), why);
    }
  });

  it("egress - a plain (never encrypted) original flow goes to the cleartext feed too, as its rules say", () => {
    const plain = flowContext({ plain: true, attributes: { user: "bob@other.org" } });
    assert.deepEqual(names(plain), ["ids/100", "ids/101"]);
    const decided = policy.decide(plain, flowHash(plain));
    assert.deepEqual(
      decided.routes.map((r) => r.variant),
      [undefined, "cleartext"],
      "the copy is labelled cleartext (GENEVE variant option)",
    );
    // The cleartext copy follows the rules for cleartext flows (here: the rule VNI).
    assert.deepEqual(names(flowContext({ plain: true })), ["ids/100", "ids/4242"]);
    // Labelled cleartext already (the cleartext variant's pass-through): one feed, the cleartext one.
    assert.deepEqual(names(flowContext({ plain: true, variant: "cleartext" })), ["ids/4242"]);
  });

  it("egress - an attribute with a control character is refused as --filter refuses it: typed, counted, exported nowhere", async () => {
    // A deny rule and a default route: `alice@example.com\n` must not slip past the drop (a glob's `*` does not
    // match across lines), and no rule may take it for alice.
    const deny = createExportPolicy({
      targets: [{ name: "ids", kind: "vxlan", address: "10.0.0.1" }],
      rules: [{ match: "user=*@example.com", action: "drop" }],
    });
    const sneaky = flowContext({ attributes: { user: "alice@example.com\n", tenant: "acme" } });
    const decision = deny.decide(sneaky, flowHash(sneaky));
    assert.deepEqual(decision.routes, [], "exported nowhere");
    assert.equal(decision.rule, undefined, "refused before the rules are read");
    assert.ok(decision.refused instanceof RefusedAttributeError);
    assert.equal(decision.refused.attribute, "user");
    assert.equal(decision.refused.code, EgressErrorCode.RefusedAttribute);
    assert.ok(!decision.refused.message.includes("alice"), "the value is not in the message");
    // The one check the flow filter makes too, so both refuse the same values.
    for (const value of ["a\u0000b", "x\ty", "bob\r", "\u007f", "\u001bc"]) {
      const f = flowContext({ attributes: { app: value } });
      assert.equal(attributeWithControlCharacter(f.attributes), "app");
      assert.equal(deny.decide(f, flowHash(f)).refused?.attribute, "app", JSON.stringify(value));
    }
    // The same flow without the newline is dropped by its rule; a clean flow takes the default route.
    assert.equal(deny.decide(flowContext(), 0).rule?.index, 0);
    const other = flowContext({ attributes: { user: "bob@other.org" } });
    assert.equal(deny.decide(other, flowHash(other)).routes.length, 1);
    // A policy without rules reads no attribute (as --filter without rules): the flow goes everywhere.
    const open = createExportPolicy({ targets: [{ kind: "vxlan", address: "10.0.0.1" }] });
    assert.equal(open.decide(sneaky, flowHash(sneaky)).routes.length, 1);
    assert.equal(open.decide(sneaky, flowHash(sneaky)).refused, undefined);

    // The tunnel output counts it apart from flows a rule dropped, and sends nothing of it.
    const transport = new MemoryTransport();
    const out = new TunnelOutput({
      policy: deny,
      transport,
      clock: new ManualClock(),
      batchBytes: 128 * 1024,
    });
    for (const flow of [sneaky, flowContext(), other]) {
      const sink = out.forFlow(flow);
      for (const frame of framesOf(flow, new Uint8Array(40).fill(7))) {
        sink.begin(frame.length).set(frame);
        sink.commit(1_764_028_800_000_000_000n, 0);
      }
    }
    for (const c of out.drain()) await out.write(c);
    const report = out.report();
    assert.deepEqual([report["flowsRefusedByPolicy"], report["flowsDroppedByPolicy"]], [1, 1]);
    assert.equal(transport.sent.length, 2, "only the clean flow's two frames");
    assert.ok(
      describeOutputReport(report).some((l) =>
        l.includes("1 flows refused (an attribute holds a control character)"),
      ),
    );
    await out.close();
  });

  it("egress - a balancing group sends both directions of a flow to one member, and spreads flows", () => {
    const members = new Set<string>();
    for (let port = 30000; port < 30040; port++) {
      const flow = flowContext({ client: { address: "10.9.1.1", port } });
      const got = names(flow);
      assert.equal(got.length, 1, "one member of the group");
      // The reverse direction's context is the same object for the stitcher; its hash is symmetric anyway.
      const reverse = flowContext({
        client: { address: flow.server.address, port: flow.server.port },
        server: { address: "10.9.1.1", port },
      });
      assert.equal(flowHash(reverse), flowHash(flow), "symmetric hash");
      members.add(got[0]!.split("/")[0]!);
    }
    assert.deepEqual([...members].sort(), ["ndr-a", "ndr-b"], "both members used");
  });

  it("egress - overhead and the stitcher's encapsulation bytes follow the tightest target", () => {
    const [ids, ndrA] = policy.targets;
    assert.equal(tunnelOverheadBytes(ids!), 50, "VXLAN over IPv4: 20 + 8 + 8 + 14");
    assert.equal(tunnelOverheadBytes(ndrA!), 20 + 8 + 8 + 128 + 14, "GENEVE with its 128-byte option bound");
    const v6 = createExportPolicy({ targets: [{ kind: "vxlan", address: "fd00::1", mtu: 9000 }] })
      .targets[0]!;
    assert.equal(tunnelOverheadBytes(v6), 70, "VXLAN over IPv6");
    assert.equal(innerIpMtu(v6), 8930, "jumbo target");
    assert.equal(encapsulationBytesFor(policy.targets, 1500), 178, "GENEVE targets are the tightest");
    assert.equal(encapsulationBytesFor([v6], 1500), 0, "a jumbo target needs nothing off a 1500 link");
    assert.equal(encapsulationBytesFor([], 1500), 0, "no target");
  });

  it("egress - a bad policy names the field", () => {
    const bad: [unknown, RegExp][] = [
      [{ targets: [{ kind: "vxlan", address: "10.0.0.1", vni: 1 << 24 }] }, /targets\[0\]\.vni/],
      [{ targets: [{ kind: "gre", address: "10.0.0.1" }] }, /targets\[0\]\.kind/],
      [{ targets: [{ kind: "vxlan", address: "not an address!" }] }, /targets\[0\]\.address/],
      [
        {
          targets: [
            { kind: "vxlan", address: "10.0.0.1", mtu: 576, vni: 1 },
            { kind: "vxlan", address: "10.0.0.1" },
          ],
        },
        /used twice/,
      ],
      [{ targets: [{ kind: "geneve", address: "10.0.0.1", mtu: 575 }] }, /targets\[0\]\.mtu/],
      [
        { targets: [{ kind: "vxlan", address: "10.0.0.1", geneveOptions: ["user"] }] },
        /geneveOptions.*only GENEVE/,
      ],
      [
        { targets: [{ kind: "geneve", address: "10.0.0.1", geneveOptions: ["shoe-size"] }] },
        /targets\[0\].*shoe-size/,
      ],
      [{ rules: [{ match: "colour=blue" }] }, /rules\[0\]\.match.*unknown key/],
      [{ rules: [{ match: "any", targets: ["nowhere"] }] }, /rules\[0\]\.targets\[0\].*no target named/],
      [{ rules: [{ match: "any", action: "drop", vni: 3 }] }, /rules\[0\].*drop rule/],
      [{ pacing: { mode: "original", speed: 0 } }, /pacing\.speed/],
      [{ remap: { client: "100.64.0.0" } }, /remap\.client\[0\]/],
      [{ remap: { client: ["100.64.0.0/10", "10.0.0.0/8"] } }, /second IPv4/],
      [{ tragets: [] }, /policy\.tragets.*unknown field/],
    ];
    for (const [s, re] of bad) {
      assert.throws(
        () => createExportPolicy(s as ExportPolicySpec),
        (err: unknown) => err instanceof ExportPolicyError && re.test(err.message),
        `${JSON.stringify(s)} should fail with ${re}`,
      );
    }
    assert.throws(() => parseExportPolicy("{"), /not valid JSON/, "JSON syntax");
  });

  it("egress - host names resolve before sizes are computed, keeping the names rules use", async () => {
    const p = createExportPolicy({
      targets: [{ kind: "vxlan", address: "ndr.example.net" }],
      rules: [{ match: "any", targets: ["vxlan:ndr.example.net:4789"] }],
    });
    assert.throws(() => tunnelOverheadBytes(p.targets[0]!), /resolve the policy/, "unresolved");
    const r = await resolveExportPolicy(p, async () => "198.51.100.7");
    assert.equal(r.targets[0]!.address, "198.51.100.7", "resolved address");
    assert.equal(r.targets[0]!.name, "vxlan:ndr.example.net:4789", "name kept");
    assert.equal(r.rules[0]!.groups[0]![0], 0, "rule still points at it");
    await assert.rejects(
      resolveExportPolicy(p, async () => {
        throw new Error("NXDOMAIN");
      }),
      /targets\[0\]\.address: cannot resolve "ndr.example.net": NXDOMAIN/,
      "resolution failure names the target",
    );
  });
});

/** A regex source for "one of the balanced members with this VNI". */
function expect(prefix: string, vni: number): string {
  return `${prefix}-[ab]/${vni}`;
}
