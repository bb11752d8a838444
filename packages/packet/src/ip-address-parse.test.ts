import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIpAddress } from "./ip-address.js";
import { parseIpAddress, tryParseIpAddress } from "./ip-address-parse.js";

describe("ip-address-parse", () => {
  const roundTrips: { text: string; canonical: string }[] = [
    { text: "192.0.2.1", canonical: "192.0.2.1" },
    { text: "0.0.0.0", canonical: "0.0.0.0" },
    { text: "255.255.255.255", canonical: "255.255.255.255" },
    { text: "2001:db8::1", canonical: "2001:db8::1" },
    { text: "2001:DB8:0:0:0:0:0:1", canonical: "2001:db8::1" },
    { text: "::", canonical: "::" },
    { text: "::1", canonical: "::1" },
    { text: "fe80::", canonical: "fe80::" },
    { text: "1:2:3:4:5:6:7::", canonical: "1:2:3:4:5:6:7:0" },
    { text: "::ffff:192.0.2.1", canonical: "::ffff:192.0.2.1" },
    { text: "::192.0.2.1", canonical: "::c000:201" },
    { text: "1:2:3:4:5:6:192.0.2.1", canonical: "1:2:3:4:5:6:c000:201" },
  ];
  for (const c of roundTrips) {
    it(`ip-address-parse - ${c.text}`, () => {
      assert.equal(formatIpAddress(parseIpAddress(c.text)), c.canonical);
    });
  }

  for (const bad of [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1::2::3",
    ":1::2",
    "1:2:3:4:5:6:7:8:9",
    "12345::",
    "::g",
    "fe80::1%eth0",
  ]) {
    it(`ip-address-parse - rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseIpAddress(bad), RangeError);
    });
  }

  // The rules of the one text form, each on its own (tap-format, flow and egress call this parser too).
  it("ip-address-parse - IPv4 octets are decimal without leading zeros, in every position and in a v6 tail", () => {
    for (const bad of ["010.1.2.3", "1.02.3.4", "1.2.003.4", "1.2.3.00", "::ffff:010.1.2.3", "0x1.2.3.4"]) {
      assert.equal(tryParseIpAddress(bad), undefined, bad);
      assert.throws(() => parseIpAddress(bad), RangeError, bad);
    }
    assert.deepEqual(parseIpAddress("0.0.0.0"), Uint8Array.of(0, 0, 0, 0));
    assert.deepEqual(parseIpAddress("100.200.10.0"), Uint8Array.of(100, 200, 10, 0));
  });

  it("ip-address-parse - an IPv4-mapped address prints as ::ffff: and a dotted quad, whichever way it was written", () => {
    const mapped = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4);
    assert.deepEqual(parseIpAddress("::ffff:1.2.3.4"), mapped);
    assert.deepEqual(parseIpAddress("::ffff:102:304"), mapped);
    assert.deepEqual(parseIpAddress("0:0:0:0:0:FFFF:0102:0304"), mapped);
    assert.equal(formatIpAddress(mapped), "::ffff:1.2.3.4");
  });

  it("ip-address-parse - tryParseIpAddress gives the same bytes as parseIpAddress, or undefined", () => {
    for (const c of roundTrips) assert.deepEqual(tryParseIpAddress(c.text), parseIpAddress(c.text));
    assert.equal(tryParseIpAddress("fe80::1%eth0"), undefined);
    assert.equal(tryParseIpAddress("10.0.0.0/8"), undefined);
  });
});
