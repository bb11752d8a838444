/** Property tests: no input, in any chunking, makes the decoder throw; unmutated input still decrypts. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseClientHello, parseEncryptedExtensions, parseServerHello } from "./handshake.js";
import { parseKeyLog } from "./key-log.js";
import { createKeyStore } from "./key-store.js";
import type { TlsDirection } from "./session-report.js";
import { tls12Connection, tls13Connection } from "./test-connections.js";
import { createTlsSession } from "./tls-session.js";

const CONNECTIONS = [
  tls13Connection({ keyUpdate: true, records: 2, recordSize: 100 }),
  tls13Connection({ suite: 0x1303, earlyData: true, helloRetryRequest: true, records: 2, recordSize: 100 }),
  tls12Connection({ suite: 0xc027, records: 2, recordSize: 100 }),
  tls12Connection({ suite: 0x002f, version: 0x0301, encryptThenMac: true, records: 2, recordSize: 100 }),
];

type Action =
  | { kind: "push"; direction: TlsDirection; bytes: Uint8Array }
  | { kind: "gap"; direction: TlsDirection; length: number }
  | { kind: "keys" }
  | { kind: "giveUp" };

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant("push" as const),
      direction: fc.constantFrom<TlsDirection>(0, 1),
      bytes: fc.uint8Array({ maxLength: 300 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("gap" as const),
      direction: fc.constantFrom<TlsDirection>(0, 1),
      length: fc.nat(5000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("keys" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("giveUp" as const) }) },
);

function checkInvariants(session: ReturnType<typeof createTlsSession>): void {
  const outcome = session.outcome;
  assert.equal(typeof outcome.kind, "string");
  for (const d of session.stats.directions) {
    assert.ok(d.queuedBytes >= 0);
    assert.ok(d.applicationBytes >= 0);
  }
}

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

describe("tls fuzz - nothing throws out of the decoder", () => {
  it("tls fuzz - arbitrary bytes, chunks, gaps and key calls", () => {
    fc.assert(
      fc.property(fc.array(action, { maxLength: 40 }), fc.boolean(), (actions, tlsPrefix) => {
        const session = createTlsSession({ keys: () => undefined, maxBufferedBytes: 4096 });
        if (tlsPrefix) session.push(0, Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x40, 0x01));
        for (const a of actions) {
          if (a.kind === "push") session.push(a.direction, a.bytes);
          else if (a.kind === "gap") session.gap(a.direction, a.length);
          else if (a.kind === "keys") session.keysAvailable();
          else session.giveUpKeys();
          checkInvariants(session);
        }
        session.finish();
        checkInvariants(session);
      }),
      { numRuns: 500 },
    );
  });

  it("tls fuzz - real connections, mutated bytes, arbitrary chunking", () => {
    fc.assert(
      fc.property(
        fc.nat(CONNECTIONS.length - 1),
        fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.boolean(),
        (which, mutations, cuts0, cuts1, lateKeys) => {
          const conn = CONNECTIONS[which]!;
          const streams = [Buffer.concat(conn.c2s), Buffer.concat(conn.s2c)];
          for (const [server, at, xor] of mutations) {
            const s = streams[server ? 1 : 0]!;
            const i = at % s.length;
            s[i] = s[i]! ^ xor;
          }
          const keys = createKeyStore();
          if (!lateKeys) keys.addKeyLog(conn.keyLog, 0);
          const got: [Buffer[], Buffer[]] = [[], []];
          const session = createTlsSession({
            keys,
            output: { applicationData: (d, p) => got[d].push(Buffer.from(p)) },
          });
          const chunks = [split(streams[0]!, cuts0), split(streams[1]!, cuts1)];
          while (chunks[0]!.length || chunks[1]!.length) {
            for (const d of [1, 0] as TlsDirection[]) {
              const c = chunks[d]!.shift();
              if (c) session.push(d, c);
            }
          }
          if (lateKeys) {
            keys.addKeyLog(conn.keyLog, 1);
            session.keysAvailable();
          }
          session.finish();
          checkInvariants(session);
          if (mutations.length === 0) {
            assert.deepEqual(Buffer.concat(got[0]), conn.c2sData);
            assert.deepEqual(Buffer.concat(got[1]), conn.s2cData);
            assert.equal(session.outcome.kind, lateKeys ? "keys-late" : "decrypted");
          } else {
            // Whatever came out is a prefix of what was sent: a mutation never yields invented plaintext.
            const c2s = Buffer.concat(got[0]);
            const s2c = Buffer.concat(got[1]);
            assert.ok(
              conn.c2sData.subarray(0, c2s.length).equals(c2s) || session.outcome.kind !== "decrypted",
            );
            assert.ok(
              conn.s2cData.subarray(0, s2c.length).equals(s2c) || session.outcome.kind !== "decrypted",
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("tls fuzz - hello parsers and the key log parser take any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        parseClientHello(bytes);
        parseServerHello(bytes);
        parseEncryptedExtensions(bytes);
        const { entries } = parseKeyLog(bytes);
        for (const e of entries) assert.equal(e.clientRandom.length, 32);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        parseKeyLog(text);
      }),
    );
  });
});
