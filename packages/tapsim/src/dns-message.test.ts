import assert from "node:assert/strict";
import { test } from "node:test";
import { resolve } from "./dns.js";
import {
  DnsFormatError,
  DnsRcode,
  decodeQuery,
  decodeResponseSummary,
  encodeQuery,
  encodeResponse,
} from "./dns-message.js";
import { DnsType } from "./exchange-plan.js";
import type { Service } from "./population.js";

test("dns - a query has the RFC 1035 layout", () => {
  const q = encodeQuery({
    id: 0x1234,
    name: "example.com",
    type: DnsType.A,
    recursionDesired: true,
    edns: false,
  });
  assert.equal(
    Buffer.from(q).toString("hex"),
    // id, flags RD, 1 question, no other records, 7 "example" 3 "com" 0, type A, class IN
    "123401000001000000000000076578616d706c6503636f6d0000010001",
  );
  const withEdns = encodeQuery({
    id: 1,
    name: "a.example",
    type: DnsType.AAAA,
    recursionDesired: true,
    edns: true,
  });
  // The OPT record: root name, type 41, UDP payload 1232, extended flags 0, no options.
  assert.equal(Buffer.from(withEdns.subarray(-11)).toString("hex"), "00002904d0000000000000");
  assert.deepEqual(decodeQuery(withEdns), {
    id: 1,
    name: "a.example",
    type: DnsType.AAAA,
    recursionDesired: true,
    edns: true,
  });
});

test("dns - answers point back at the question and carry the addresses", () => {
  const q = { id: 7, name: "files.example.net", type: DnsType.AAAA, recursionDesired: true, edns: false };
  const r = encodeResponse(
    q,
    DnsRcode.NoError,
    [{ type: DnsType.AAAA, ttl: 300, address: "2001:db8:103::5" }],
    "example.net",
  );
  assert.deepEqual(decodeResponseSummary(r), { id: 7, rcode: 0, answerCount: 1 });
  const answer = Buffer.from(r.subarray(12 + 19 + 4));
  assert.equal(answer.readUInt16BE(0), 0xc00c, "owner name is a pointer to the question");
  assert.equal(answer.readUInt16BE(2), DnsType.AAAA);
  assert.equal(answer.readUInt16BE(10), 16);
  assert.equal(answer.subarray(12, 28).toString("hex"), "20010db8010300000000000000000005");
  const nx = encodeResponse({ ...q, name: "wpad.acme.example" }, DnsRcode.NxDomain, [], "acme.example");
  assert.deepEqual(decodeResponseSummary(nx), { id: 7, rcode: 3, answerCount: 0 });
  assert.equal(Buffer.from(nx).readUInt16BE(8), 1, "NXDOMAIN carries the zone's SOA");
});

test("dns - the resolver answers from the services and says NXDOMAIN otherwise", () => {
  const services: Service[] = [
    {
      host: "api.example.com",
      app: "payments-api",
      kind: "https",
      profile: "api",
      port: 443,
      prefersH2: true,
      ipv4: "203.0.113.9",
      ipv6: "2001:db8:106::9",
    },
  ];
  assert.deepEqual(resolve(services, "API.example.com", DnsType.A), {
    rcode: DnsRcode.NoError,
    answers: [{ type: DnsType.A, ttl: 300, address: "203.0.113.9" }],
  });
  assert.deepEqual(resolve(services, "api.example.com", DnsType.HTTPS).answers, [
    { type: DnsType.HTTPS, ttl: 300, alpn: ["h2", "http/1.1"] },
  ]);
  assert.equal(resolve(services, "nope.example.com", DnsType.A).rcode, DnsRcode.NxDomain);
});

test("dns - malformed messages are typed errors", () => {
  assert.throws(() => decodeQuery(Uint8Array.of(0, 1, 0)), DnsFormatError);
  const response = encodeResponse(
    { id: 1, name: "x.example", type: DnsType.A, recursionDesired: true, edns: false },
    DnsRcode.NxDomain,
    [],
    "example",
  );
  assert.throws(() => decodeQuery(response), DnsFormatError);
  assert.throws(
    () =>
      encodeQuery({
        id: 1,
        name: `${"a".repeat(64)}.example`,
        type: DnsType.A,
        recursionDesired: true,
        edns: false,
      }),
    DnsFormatError,
  );
});
