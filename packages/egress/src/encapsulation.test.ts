import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isEgressError } from "./errors.js";
import { endpointPairHash, flowHash } from "./flow-hash.js";
import { frameFlowContext } from "./frame-flow.js";
import {
  CLOUDTAP_GENEVE_OPTION_CLASS,
  encodeGeneveOptions,
  GENEVE_MAX_OPTION_BYTES,
  GeneveOptionType,
  geneveHeader,
  geneveOptionsConfig,
  parseGeneve,
} from "./geneve.js";
import { flowContext, framesOf } from "./test-frames.js";
import { parseVxlan, vxlanHeader } from "./vxlan.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("egress - VXLAN header (RFC 7348)", () => {
  it("egress - I flag, 24-bit VNI, reserved bits zero", () => {
    assert.equal(hex(vxlanHeader(0x123456)), "0800000012345600", "header bytes");
    assert.equal(hex(vxlanHeader(0)), "0800000000000000", "VNI 0");
    assert.equal(hex(vxlanHeader(0xffffff)), "08000000ffffff00", "largest VNI");
  });

  it("egress - a VNI outside 24 bits is refused", () => {
    for (const vni of [-1, 0x1000000, 1.5]) {
      assert.throws(() => vxlanHeader(vni), isEgressError, `VNI ${vni}`);
    }
  });

  it("egress - parse gives the VNI and the inner frame back", () => {
    const payload = Uint8Array.from([...vxlanHeader(42), 1, 2, 3]);
    const p = parseVxlan(payload);
    assert.equal(p?.vni, 42, "VNI");
    assert.deepEqual([...(p?.frame ?? [])], [1, 2, 3], "inner frame");
    assert.equal(parseVxlan(Uint8Array.of(0, 0, 0, 0, 0, 0, 42, 0)), undefined, "I flag clear");
  });
});

describe("egress - GENEVE header and cloudtap options (RFC 8926)", () => {
  const config = geneveOptionsConfig();

  it("egress - base header: version 0, Opt Len in words, O and C clear, protocol 0x6558, VNI", () => {
    const h = geneveHeader(0xabcdef, new Uint8Array(8));
    assert.equal(hex(h.subarray(0, 8)), "02006558abcdef00", "base header with 8 bytes of options");
    assert.equal(h.length, 16, "base header plus options");
  });

  it("egress - the default options carry connection id, variant, user, tenant and app in the cloudtap class", () => {
    const flow = flowContext({ variant: "cleartext" });
    const enc = encodeGeneveOptions(flow, config);
    assert.equal(enc.truncated, 0, "nothing truncated");
    assert.equal(enc.omitted, 0, "nothing omitted");
    const parsed = parseGeneve(Uint8Array.from([...geneveHeader(7, enc.bytes), 0xaa]));
    assert.ok(parsed, "parses");
    assert.equal(parsed.vni, 7, "VNI");
    assert.equal(parsed.protocolType, 0x6558, "Ethernet payload");
    assert.deepEqual([...parsed.payload], [0xaa], "payload after the options");
    const byType = new Map(parsed.options.map((o) => [o.type, o]));
    for (const o of parsed.options) {
      assert.equal(o.optionClass, CLOUDTAP_GENEVE_OPTION_CLASS, "cloudtap class");
      assert.equal(o.critical, false, "not critical");
    }
    assert.equal(hex(byType.get(GeneveOptionType["connection-id"])!.data), flow.connId, "connection id");
    assert.deepEqual([...byType.get(GeneveOptionType.variant)!.data], [1, 0, 0, 0], "variant cleartext");
    const text = (t: number) => Buffer.from(byType.get(t)!.data).toString("utf8").replace(/\0+$/, "");
    assert.equal(text(GeneveOptionType.user), "alice@example.com", "user");
    assert.equal(text(GeneveOptionType.tenant), "acme", "tenant");
    assert.equal(text(GeneveOptionType.app), "web", "app");
  });

  it("egress - options stay within their bound; long text is cut at a character boundary and counted", () => {
    const long = "ü".repeat(100); // 200 bytes of UTF-8
    const flow = flowContext({ attributes: { user: long, tenant: long, app: long } });
    for (const bound of [0, 4, 28, 64, 128, GENEVE_MAX_OPTION_BYTES]) {
      const c = geneveOptionsConfig({ maxOptionBytes: bound });
      const enc = encodeGeneveOptions(flow, c);
      assert.ok(enc.bytes.length <= bound, `bound ${bound}: ${enc.bytes.length} bytes`);
      assert.equal(enc.bytes.length % 4, 0, `bound ${bound}: whole words`);
      const parsed = parseGeneve(geneveHeader(1, enc.bytes));
      assert.ok(parsed, `bound ${bound}: parses`);
      for (const o of parsed.options) {
        if (o.type < GeneveOptionType.user) continue;
        const s = Buffer.from(o.data).toString("utf8").replace(/\0+$/, "");
        assert.ok(/^ü*$/.test(s), `bound ${bound}: no split character in "${s}"`);
      }
      if (bound === GENEVE_MAX_OPTION_BYTES) assert.ok(enc.truncated > 0, "truncation counted");
      if (bound === 0) assert.equal(enc.omitted, 5, "everything omitted at a zero bound");
    }
  });

  it("egress - options are switchable, and an unknown or repeated option is refused", () => {
    const enc = encodeGeneveOptions(flowContext(), geneveOptionsConfig({ options: ["tenant"] }));
    const parsed = parseGeneve(geneveHeader(1, enc.bytes))!;
    assert.deepEqual(
      parsed.options.map((o) => o.type),
      [GeneveOptionType.tenant],
      "only the tenant",
    );
    assert.throws(() => geneveOptionsConfig({ options: ["nope" as "user"] }), isEgressError, "unknown");
    assert.throws(() => geneveOptionsConfig({ options: ["user", "user"] }), isEgressError, "twice");
    assert.throws(() => geneveOptionsConfig({ maxOptionBytes: 254 }), isEgressError, "not a multiple of 4");
  });

  it("egress - a malformed GENEVE header does not parse", () => {
    const good = geneveHeader(1, encodeGeneveOptions(flowContext(), config).bytes);
    assert.equal(parseGeneve(good.subarray(0, good.length - 1)), undefined, "options past the end");
    const v1 = good.slice();
    v1[0]! |= 0x40;
    assert.equal(parseGeneve(v1), undefined, "version 1");
  });
});

describe("egress - symmetric flow hash", () => {
  it("egress - both directions hash the same, for any endpoints", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.constantFrom(6, 17),
        (a, b, ap, bp, proto) =>
          endpointPairHash(proto, a, ap, b, bp) === endpointPairHash(proto, b, bp, a, ap),
      ),
    );
  });

  it("egress - the context's hash is the hash of its frames in either direction", () => {
    for (const flow of [
      flowContext(),
      flowContext({ transport: "udp", server: { address: "192.0.2.53", port: 53 } }),
      flowContext({
        ipVersion: 6,
        client: { address: "fd00::1", port: 40000 },
        server: { address: "2001:db8::5", port: 443 },
      }),
    ]) {
      const [c2s, s2c] = framesOf(flow, new Uint8Array(10));
      const a = frameFlowContext(c2s);
      const b = frameFlowContext(s2c);
      assert.ok(a && b, "frames parse");
      assert.deepEqual(a, b, "one context for both directions");
      assert.equal(flowHash(a), flowHash(flow), `${flow.client.address}: frame hash = context hash`);
    }
  });

  it("egress - different flows spread over slots", () => {
    const slots = new Set<number>();
    for (let port = 40000; port < 40064; port++)
      slots.add(flowHash(flowContext({ client: { address: "10.0.0.1", port } })) % 16);
    assert.ok(slots.size >= 12, `64 flows use ${slots.size} of 16 slots`);
  });
});
