import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodePacket,
  formatIpAddress,
  internetChecksum,
  parseIpAddress,
  transportChecksum,
} from "@cloudtap/packet";
import { type AddressMapping, AddressRemapper, rewriteFrame } from "./address-remap.js";
import { cidrMatcher } from "./flow-match.js";
import { flowContext, framesOf } from "./test-frames.js";

/** Both checksums of a frame verify (IPv4 header, TCP/UDP with its pseudo-header). */
function assertChecksums(frame: Uint8Array, what: string): void {
  const p = decodePacket(1, frame);
  const ip = p.ip!;
  const ipHeader = frame.subarray(14, 14 + (ip.version === 4 ? ip.headerLength : 40));
  if (ip.version === 4) assert.equal(internetChecksum(ipHeader), 0, `${what}: IPv4 header checksum`);
  assert.equal(
    transportChecksum(ip.source, ip.destination, p.ipProtocol!, ip.payload),
    0,
    `${what}: transport checksum`,
  );
}

describe("egress - address remapping", () => {
  it("egress - both directions are rewritten into the ranges with valid checksums", () => {
    const cases = [
      flowContext(),
      flowContext({ transport: "udp", server: { address: "192.0.2.53", port: 53 } }),
      flowContext({
        ipVersion: 6,
        client: { address: "fd00::1:2", port: 40000 },
        server: { address: "2001:db8::5", port: 443 },
      }),
    ];
    const mappings: AddressMapping[] = [];
    const remapper = new AddressRemapper(
      { client: ["100.64.0.0/10", "fd7a:115c::/64"], server: ["198.18.0.0/15"], maxMappings: 1000 },
      (m) => mappings.push(m),
    );
    for (const flow of cases) {
      const rw = remapper.forFlow(flow);
      assert.ok(rw, "mapped");
      const [c2s, s2c] = framesOf(flow, new TextEncoder().encode("payload bytes, odd length"));
      assert.ok(rewriteFrame(c2s, rw), "c2s rewritten");
      assert.ok(rewriteFrame(s2c, rw), "s2c rewritten");
      for (const [f, what] of [
        [c2s, "c2s"],
        [s2c, "s2c"],
      ] as const) {
        assertChecksums(f, `${flow.client.address} ${what}`);
      }
      const a = decodePacket(1, c2s).ip!;
      const b = decodePacket(1, s2c).ip!;
      const client = formatIpAddress(a.source);
      assert.deepEqual([formatIpAddress(b.destination)], [client], "the same client address both ways");
      if (flow.ipVersion === 4) {
        assert.ok(cidrMatcher("100.64.0.0/10")(client), `client ${client} in the range`);
        assert.ok(cidrMatcher("198.18.0.0/15")(formatIpAddress(a.destination)), "server in its range");
      } else {
        assert.ok(cidrMatcher("fd7a:115c::/64")(client), `client ${client} in the IPv6 range`);
        assert.equal(formatIpAddress(a.destination), "2001:db8::5", "no IPv6 server range: server unchanged");
      }
    }
    assert.equal(remapper.stats.flowsUnmappedFamily, 1, "the IPv6 flow had no server range");
    assert.deepEqual(
      mappings.map((m) => m.role),
      ["client", "server", "server", "client"],
      "one log entry per new address (the client of the first two flows is the same)",
    );
  });

  it("egress - stable per address, distinct addresses never share, network and broadcast never used", () => {
    const remapper = new AddressRemapper({ client: ["100.64.0.0/29"], server: [], maxMappings: 1000 });
    const seen = new Map<string, string>();
    for (let i = 1; i <= 6; i++) {
      const original = parseIpAddress(`10.0.0.${i}`);
      const mapped = formatIpAddress(remapper.map("client", original)!);
      assert.equal(formatIpAddress(remapper.map("client", original)!), mapped, "stable");
      assert.ok(!["100.64.0.0", "100.64.0.7"].includes(mapped), `${mapped} is not network/broadcast`);
      assert.ok(![...seen.values()].includes(mapped), `${mapped} not given twice`);
      seen.set(`10.0.0.${i}`, mapped);
    }
    assert.equal(remapper.map("client", parseIpAddress("10.0.0.7")), undefined, "a /29 holds 6 hosts");
    const flow = flowContext({ client: { address: "10.0.0.99", port: 1 } });
    assert.equal(remapper.forFlow(flow), undefined, "a full range leaves the flow unmapped");
    assert.equal(remapper.stats.flowsExhausted, 1, "counted");
  });

  it("egress - IPv4 fragments: the first gets its UDP checksum adjusted, later ones only the IP header", () => {
    const flow = flowContext({ transport: "udp", server: { address: "192.0.2.53", port: 53 } });
    const remapper = new AddressRemapper({ client: ["100.64.0.0/10"], server: [], maxMappings: 10 });
    const rw = remapper.forFlow(flow)!;
    const [c2s] = framesOf(flow, new Uint8Array(64).fill(7));
    const later = c2s.slice();
    later[14 + 6] = 0x00;
    later[14 + 7] = 0x08; // fragment offset 8 (64 bytes): no UDP header in this fragment
    later[14 + 10] = 0;
    later[14 + 11] = 0;
    const sum = internetChecksum(later.subarray(14, 34));
    later[14 + 10] = sum >> 8;
    later[14 + 11] = sum & 0xff;
    const udpChecksumBefore = later.subarray(40, 42).slice();
    assert.ok(rewriteFrame(later, rw), "rewritten");
    assert.equal(internetChecksum(later.subarray(14, 34)), 0, "IPv4 header checksum");
    assert.deepEqual(
      later.subarray(40, 42),
      udpChecksumBefore,
      "payload bytes of a later fragment untouched",
    );
  });

  it("egress - a frame of another flow is left alone", () => {
    const remapper = new AddressRemapper({ client: ["100.64.0.0/10"], server: [], maxMappings: 10 });
    const rw = remapper.forFlow(flowContext())!;
    const [other] = framesOf(flowContext({ client: { address: "10.7.7.7", port: 1 } }));
    const copy = other.slice();
    assert.equal(rewriteFrame(other, rw), false, "not rewritten");
    assert.deepEqual(other, copy, "bytes unchanged");
  });
});
