import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIpAddress } from "./ip-address.js";
import { parseIpAddress } from "./ip-address-parse.js";

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
});
