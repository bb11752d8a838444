import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIpAddress, formatIpv4, formatIpv6 } from "./ip-address.js";

function v6(groups: number[]): Uint8Array {
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

describe("ip-address", () => {
  it("ip-address - IPv4 dotted quad", () => {
    assert.equal(formatIpv4(Uint8Array.of(192, 0, 2, 255)), "192.0.2.255");
    assert.equal(formatIpAddress(Uint8Array.of(10, 0, 0, 1)), "10.0.0.1");
    assert.throws(() => formatIpv4(new Uint8Array(3)), RangeError);
  });

  // Cases from RFC 5952 sections 4.1 to 4.3 and 5.
  const cases: { groups: number[]; want: string }[] = [
    { groups: [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], want: "2001:db8::1" },
    { groups: [0x2001, 0xdb8, 0, 0, 0, 0, 2, 1], want: "2001:db8::2:1" },
    { groups: [0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], want: "2001:db8:0:1:1:1:1:1" }, // 4.2.2: one zero group stays
    { groups: [0x2001, 0, 0, 1, 0, 0, 0, 1], want: "2001:0:0:1::1" }, // 4.2.3: longest run wins
    { groups: [0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], want: "2001:db8::1:0:0:1" }, // 4.2.3: first run on a tie
    {
      groups: [0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd, 0xeeee, 0xaaaa],
      want: "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa",
    },
    { groups: [0, 0, 0, 0, 0, 0, 0, 0], want: "::" },
    { groups: [0, 0, 0, 0, 0, 0, 0, 1], want: "::1" },
    { groups: [0xfe80, 0, 0, 0, 0, 0, 0, 0], want: "fe80::" },
    { groups: [0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0280], want: "::ffff:192.0.2.128" },
    { groups: [0x2606, 0x4700, 0, 0, 0, 0, 0x6810, 0x84e5], want: "2606:4700::6810:84e5" },
  ];
  for (const c of cases) {
    it(`ip-address - IPv6 ${c.want}`, () => {
      assert.equal(formatIpv6(v6(c.groups)), c.want);
      assert.equal(formatIpAddress(v6(c.groups)), c.want);
    });
  }

  it("ip-address - IPv6 rejects a wrong length", () => {
    assert.throws(() => formatIpv6(new Uint8Array(4)), RangeError);
  });
});
