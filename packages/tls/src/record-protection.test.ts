import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { getCipherSuite, TlsVersion } from "./cipher-suites.js";
import { deriveTls12KeyBlock, deriveTls13TrafficKeys, nextTrafficSecret } from "./key-schedule.js";
import { nativeAead, recyclePlaintext } from "./native-aead.js";
import {
  createTls12Opener,
  IntegrityFailure,
  type RecordOpener,
  Tls13RecordOpener,
} from "./record-protection.js";
import * as V from "./rfc8448.js";
import { type CbcSealState, pattern, sealTls12Aead, sealTls12Cbc, sealTls13 } from "./test-records.js";

const SIZES = [0, 1, 15, 16, 17, 100, 1400, 16384];

function fragmentOf(record: Uint8Array): { type: number; version: number; fragment: Uint8Array } {
  return { type: record[0]!, version: (record[1]! << 8) | record[2]!, fragment: record.subarray(5) };
}

function openAll(opener: RecordOpener, records: Uint8Array[]): { type: number; plaintext: Buffer }[] {
  return records.map((r, i) => {
    const { type, version, fragment } = fragmentOf(r);
    const failure = opener.open(type, version, fragment);
    assert.equal(failure, undefined, `record ${i} opens`);
    return { type: opener.contentType, plaintext: Buffer.from(opener.plaintext) };
  });
}

function flipped(record: Uint8Array, at: number): Uint8Array {
  const copy = Uint8Array.from(record);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
}

describe("record protection - RFC 8448 section 3 records", () => {
  const suite = getCipherSuite(0x1301)!;

  it("record protection - the server's encrypted handshake flight opens with the server handshake keys", () => {
    const opener = new Tls13RecordOpener(suite, V.SERVER_HANDSHAKE_TRAFFIC_SECRET);
    const { type, version, fragment } = fragmentOf(V.SERVER_FLIGHT_RECORD);
    assert.equal(opener.open(type, version, fragment), undefined);
    assert.equal(opener.contentType, 22);
    const pt = Buffer.from(opener.plaintext);
    assert.equal(pt.length, 657, "EE 40 + Certificate 445 + CertificateVerify 136 + Finished 36");
    assert.deepEqual(pt.subarray(0, 40), Buffer.from(V.ENCRYPTED_EXTENSIONS));
    assert.deepEqual(pt.subarray(pt.length - 36), Buffer.from(V.SERVER_FINISHED));
  });

  it("record protection - application data, ticket and alerts open with the traffic keys, in sequence", () => {
    const server = new Tls13RecordOpener(suite, V.SERVER_APPLICATION_TRAFFIC_SECRET);
    const [ticket, data, alert] = openAll(server, [
      V.SERVER_TICKET_RECORD,
      V.SERVER_APPLICATION_RECORD,
      V.SERVER_ALERT_RECORD,
    ]);
    assert.equal(ticket!.type, 22);
    assert.equal(ticket!.plaintext[0], 4, "NewSessionTicket");
    assert.deepEqual(data, { type: 23, plaintext: Buffer.from(V.APPLICATION_PAYLOAD) });
    assert.deepEqual(alert, { type: 21, plaintext: Buffer.from([1, 0]) });

    const clientHs = new Tls13RecordOpener(suite, V.CLIENT_HANDSHAKE_TRAFFIC_SECRET);
    const [finished] = openAll(clientHs, [V.CLIENT_FINISHED_RECORD]);
    assert.equal(finished!.plaintext[0], 20, "Finished");
    const client = new Tls13RecordOpener(suite, V.CLIENT_APPLICATION_TRAFFIC_SECRET);
    const [cdata, calert] = openAll(client, [V.CLIENT_APPLICATION_RECORD, V.CLIENT_ALERT_RECORD]);
    assert.deepEqual(cdata, { type: 23, plaintext: Buffer.from(V.APPLICATION_PAYLOAD) });
    assert.deepEqual(calert, { type: 21, plaintext: Buffer.from([1, 0]) });
  });

  it("record protection - a flipped bit or the wrong sequence number fails the tag", () => {
    const server = new Tls13RecordOpener(suite, V.SERVER_APPLICATION_TRAFFIC_SECRET);
    const { type, version, fragment } = fragmentOf(V.SERVER_APPLICATION_RECORD);
    assert.equal(
      server.open(type, version, fragment),
      IntegrityFailure.AeadTag,
      "sequence 0, record was sequence 1",
    );
    assert.equal(server.sequence, 0, "a failed record does not advance the sequence");
    const bad = fragmentOf(flipped(V.SERVER_TICKET_RECORD, 40));
    assert.equal(server.open(bad.type, bad.version, bad.fragment), IntegrityFailure.AeadTag);
    const header = fragmentOf(flipped(V.SERVER_TICKET_RECORD, 2)); // the header is additional data
    assert.equal(server.open(header.type, header.version, header.fragment), IntegrityFailure.AeadTag);
  });
});

/** Both paths of the AEAD openers: the native one (when built; see native-aead.ts) and node:crypto. */
const PATHS = [
  { native: true, label: "native opener" },
  { native: false, label: "node:crypto" },
] as const;

describe("record protection - the native AEAD opener is built", () => {
  it("was built at install and loads (CLOUDTAP_TLS_NATIVE=0 tests the node:crypto path alone)", (t) => {
    if (process.env["CLOUDTAP_TLS_NATIVE"] === "0") {
      t.skip("CLOUDTAP_TLS_NATIVE=0");
      return;
    }
    assert.equal(nativeAead().reason, "loaded");
  });
});

describe("record protection - TLS 1.3 suites against createCipheriv", () => {
  for (const code of [0x1301, 0x1302, 0x1303, 0x1304, 0x1305])
    for (const { native, label } of PATHS) {
      const suite = getCipherSuite(code)!;
      it(`record protection - ${suite.name} (${label})`, () => {
        const secret = pattern(suite.prfHash === "sha384" ? 48 : 32, code);
        const keys = deriveTls13TrafficKeys(suite, secret);
        const records = SIZES.map((n, seq) =>
          sealTls13(suite, keys, seq, seq % 2 ? 22 : 23, pattern(n, seq), seq * 3),
        );
        const opened = openAll(new Tls13RecordOpener(suite, secret, native), records);
        assert.deepEqual(
          opened,
          SIZES.map((n, seq) => ({ type: seq % 2 ? 22 : 23, plaintext: pattern(n, seq) })),
        );
        for (const at of [5, records[0]!.length - 1]) {
          const opener = new Tls13RecordOpener(suite, secret, native);
          const { type, version, fragment } = fragmentOf(flipped(records[0]!, at));
          assert.equal(
            opener.open(type, version, fragment),
            IntegrityFailure.AeadTag,
            `bit flipped at ${at}`,
          );
        }
        const zeros = sealTls13(suite, keys, 0, 0, new Uint8Array(0), 5);
        const { type, version, fragment } = fragmentOf(zeros);
        assert.equal(
          new Tls13RecordOpener(suite, secret, native).open(type, version, fragment),
          IntegrityFailure.NoInnerContentType,
        );
      });
    }

  it("record protection - KeyUpdate: next() opens records under the next traffic secret", () => {
    const suite = getCipherSuite(0x1302)!;
    const secret = pattern(48, 9);
    const opener = new Tls13RecordOpener(suite, secret).next();
    const next = deriveTls13TrafficKeys(suite, nextTrafficSecret("sha384", secret));
    const [r] = openAll(opener, [sealTls13(suite, next, 0, 23, pattern(10))]);
    assert.deepEqual(r!.plaintext, pattern(10));
  });
});

const MASTER = pattern(48, 77);
const CLIENT_RANDOM = pattern(32, 1);
const SERVER_RANDOM = pattern(32, 2);

describe("record protection - TLS 1.2 AEAD suites against createCipheriv", () => {
  for (const code of [0xc02f, 0xc030, 0x009d, 0xcca8, 0xcca9, 0xc09c, 0xc09d, 0xc0a0, 0xc0af, 0xc050, 0xc061])
    for (const { native, label } of PATHS) {
      const suite = getCipherSuite(code)!;
      it(`record protection - ${suite.name} (${label})`, () => {
        const block = deriveTls12KeyBlock(TlsVersion.Tls12, suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM);
        for (const side of [block.client, block.server]) {
          const records = SIZES.map((n, seq) =>
            sealTls12Aead(suite, side, seq, seq === 1 ? 22 : 23, pattern(n, seq)),
          );
          const opener = createTls12Opener(suite, TlsVersion.Tls12, side, false, native)!;
          assert.deepEqual(
            openAll(opener, records),
            SIZES.map((n, seq) => ({ type: seq === 1 ? 22 : 23, plaintext: pattern(n, seq) })),
          );
          const explicit = suite.cipher.explicitNonceLength;
          for (const at of [5, 5 + explicit, records[0]!.length - 1]) {
            const fresh = createTls12Opener(suite, TlsVersion.Tls12, side, false, native)!;
            const { type, version, fragment } = fragmentOf(flipped(records[0]!, at));
            assert.equal(
              fresh.open(type, version, fragment),
              IntegrityFailure.AeadTag,
              `bit flipped at ${at}`,
            );
          }
          const short = createTls12Opener(suite, TlsVersion.Tls12, side, false, native)!;
          assert.equal(
            short.open(23, 0x0303, new Uint8Array(explicit + suite.cipher.tagLength - 1)),
            IntegrityFailure.RecordLength,
          );
        }
      });
    }

  it("record protection - AEAD suites are refused below TLS 1.2", () => {
    const suite = getCipherSuite(0xc02f)!;
    const block = deriveTls12KeyBlock(TlsVersion.Tls11, suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM);
    assert.equal(createTls12Opener(suite, TlsVersion.Tls11, block.client, false), undefined);
  });
});

describe("record protection - CBC suites against createCipheriv", () => {
  const cases = [
    [0x002f, TlsVersion.Tls10],
    [0x002f, TlsVersion.Tls11],
    [0xc013, TlsVersion.Tls12],
    [0xc027, TlsVersion.Tls12],
    [0xc028, TlsVersion.Tls12],
    [0x003d, TlsVersion.Tls12],
    [0x000a, TlsVersion.Tls10],
    [0x000a, TlsVersion.Tls12],
  ] as const;
  for (const [code, version] of cases) {
    const suite = getCipherSuite(code)!;
    for (const etm of [false, true])
      for (const { native, label } of PATHS) {
        it(`record protection - ${suite.name} ${version === TlsVersion.Tls10 ? "TLS 1.0" : version === TlsVersion.Tls11 ? "TLS 1.1" : "TLS 1.2"} ${etm ? "encrypt-then-MAC" : "MAC-then-encrypt"} (${label})`, () => {
          const block = deriveTls12KeyBlock(version, suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM);
          const bs = suite.cipher.blockSize;
          for (const side of [block.client, block.server]) {
            const state: CbcSealState = { chainIv: side.iv };
            const records = SIZES.map((n, seq) =>
              sealTls12Cbc(suite, side, version, seq, 23, pattern(n, seq), {
                etm,
                explicitIv: pattern(bs, 100 + seq),
                state,
                extraPadding: seq % 3,
              }),
            );
            const opener = createTls12Opener(suite, version, side, etm, native)!;
            assert.deepEqual(
              openAll(opener, records),
              SIZES.map((n, seq) => ({ type: 23, plaintext: pattern(n, seq) })),
            );
            const r = records[5]!; // 100 bytes of content
            const flips = [
              [r.length - 1, etm ? IntegrityFailure.Mac : IntegrityFailure.Padding], // MAC byte / last padding byte
              [5 + (version >= TlsVersion.Tls11 ? bs : 0) + 2, IntegrityFailure.Mac], // first ciphertext block
            ] as const;
            for (const [at, want] of flips) {
              const fresh = createTls12Opener(suite, version, side, etm, native)!;
              for (let i = 0; i < 5; i++) {
                const { type, version: v, fragment } = fragmentOf(records[i]!);
                assert.equal(fresh.open(type, v, fragment), undefined);
              }
              const { type, version: v, fragment } = fragmentOf(flipped(r, at));
              assert.equal(fresh.open(type, v, fragment), want, `bit flipped at ${at}`);
            }
            const trimmed = fragmentOf(records[5]!.subarray(0, records[5]!.length - 1));
            const fresh = createTls12Opener(suite, version, side, etm, native)!;
            assert.equal(
              fresh.open(trimmed.type, trimmed.version, trimmed.fragment),
              IntegrityFailure.RecordLength,
            );
          }
        });
      }
  }

  it("record protection - the MtE plaintext `hello` + 0x17 keeps its last byte (it is not padding)", () => {
    const suite = getCipherSuite(0xc027)!;
    const block = deriveTls12KeyBlock(TlsVersion.Tls12, suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM);
    const content = Buffer.from("hello\x17", "latin1");
    const record = sealTls12Cbc(suite, block.client, TlsVersion.Tls12, 0, 23, content, {
      etm: false,
      explicitIv: pattern(16, 5),
    });
    const [r] = openAll(createTls12Opener(suite, TlsVersion.Tls12, block.client, false)!, [record]);
    assert.deepEqual(r!.plaintext, content);
  });

  it("record protection - NULL-SHA carries the content and checks the MAC", () => {
    const suite = getCipherSuite(0x0002)!;
    const block = deriveTls12KeyBlock(TlsVersion.Tls12, suite, MASTER, CLIENT_RANDOM, SERVER_RANDOM);
    const opener = createTls12Opener(suite, TlsVersion.Tls12, block.client, false)!;
    const content = Buffer.from("in the clear");
    const mac = createHmac("sha1", block.client.macKey)
      .update(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 23, 3, 3, 0, content.length]))
      .update(content)
      .digest();
    const fragment = Buffer.concat([content, mac]);
    assert.equal(opener.open(23, 0x0303, fragment), undefined);
    assert.deepEqual(Buffer.from(opener.plaintext), content);
    assert.equal(opener.open(23, 0x0303, flipped(fragment, 0)), IntegrityFailure.Mac);
  });
});

describe("record protection - plaintext buffers given back are reused, never twice", () => {
  it("a recycled buffer comes back once; later plaintexts stay correct", (t) => {
    if (nativeAead().binding === undefined) {
      t.skip(`native opener: ${nativeAead().reason}`);
      return;
    }
    const suite = getCipherSuite(0x1301)!;
    const secret = pattern(32, 5);
    const keys = deriveTls13TrafficKeys(suite, secret);
    const records = [0, 1, 2, 3].map((seq) => sealTls13(suite, keys, seq, 23, pattern(1000, seq)));
    const opener = new Tls13RecordOpener(suite, secret, true);
    const open = (i: number) => {
      const { type, version, fragment } = fragmentOf(records[i]!);
      assert.equal(opener.open(type, version, fragment), undefined);
      return opener.plaintext;
    };
    const a = open(0);
    assert.deepEqual(Buffer.from(a), Buffer.from(pattern(1000, 0)));
    recyclePlaintext(a);
    recyclePlaintext(a); // a second give-back is ignored
    const b = open(1);
    const c = open(2);
    assert.equal(b.buffer, a.buffer, "the given-back buffer is reused");
    assert.notEqual(c.buffer, b.buffer, "and handed out only once");
    assert.deepEqual(Buffer.from(b), Buffer.from(pattern(1000, 1)));
    assert.deepEqual(Buffer.from(c), Buffer.from(pattern(1000, 2)));
    recyclePlaintext(new Uint8Array(100)); // not the pool's: ignored
  });
});
