import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TlsArgumentError, TlsOptionError } from "./errors.js";
import { HandshakeType } from "./handshake.js";
import { KeyLogLabel } from "./key-log.js";
import { createKeyStore, KeyWaitStatus } from "./key-store.js";
import * as V from "./rfc8448.js";
import { StopReason, type TlsDirection, type TlsKeyRequest, TlsOutcomeKind } from "./session-report.js";
import { type SyntheticConnection, tls12Connection, tls13Connection } from "./test-connections.js";
import { clientHelloBody, handshakeMessage, pattern, plainRecord, serverHelloBody } from "./test-records.js";
import { createTlsSession, type TlsSession, type TlsSessionOptions } from "./tls-session.js";

interface Run {
  readonly session: TlsSession;
  readonly data: [Buffer, Buffer];
  /** Plaintext chunks per direction, as emitted. */
  readonly chunks: [number, number];
  readonly needKeys: TlsKeyRequest[];
  readonly handshakes: number;
  readonly alerts: [number, number, number][];
}

type Chunking = "records" | "whole" | "bytes" | "random";
type Order = "c2s-first" | "s2c-first" | "interleaved";

function chunk(records: readonly Buffer[], how: Chunking, seed: number): Buffer[] {
  const all = Buffer.concat(records);
  switch (how) {
    case "records":
      return [...records];
    case "whole":
      return [all];
    case "bytes":
      return [...all].map((b) => Buffer.from([b]));
    case "random": {
      const out: Buffer[] = [];
      let x = seed;
      for (let pos = 0; pos < all.length; ) {
        x = (x * 1103515245 + 12345) >>> 0;
        const n = 1 + (x % 700);
        out.push(all.subarray(pos, pos + n));
        pos += n;
      }
      return out;
    }
  }
}

function start(options: Omit<TlsSessionOptions, "output">) {
  const data: [Buffer[], Buffer[]] = [[], []];
  const chunks: [number, number] = [0, 0];
  const needKeys: TlsKeyRequest[] = [];
  const alerts: [number, number, number][] = [];
  let handshakes = 0;
  const session = createTlsSession({
    ...options,
    output: {
      applicationData(direction, plaintext) {
        data[direction].push(Buffer.from(plaintext));
        chunks[direction]++;
      },
      handshake() {
        handshakes++;
      },
      alert(direction, alert) {
        alerts.push([direction, alert.level, alert.description]);
      },
      needKeys(request) {
        needKeys.push(request);
      },
    },
  });
  return {
    session,
    result(): Run {
      return {
        session,
        data: [Buffer.concat(data[0]), Buffer.concat(data[1])],
        chunks,
        needKeys,
        handshakes,
        alerts,
      };
    },
  };
}

function feed(session: TlsSession, c2s: readonly Buffer[], s2c: readonly Buffer[], order: Order): void {
  const queues: [Buffer[], Buffer[]] = [[...c2s], [...s2c]];
  if (order === "c2s-first") {
    for (const b of queues[0]) session.push(0, b);
    for (const b of queues[1]) session.push(1, b);
    return;
  }
  if (order === "s2c-first") {
    for (const b of queues[1]) session.push(1, b);
    for (const b of queues[0]) session.push(0, b);
    return;
  }
  while (queues[0].length || queues[1].length) {
    for (const d of [0, 1] as TlsDirection[]) {
      const b = queues[d].shift();
      if (b) session.push(d, b);
    }
  }
}

type Connection = Omit<SyntheticConnection, "sealServer">;

function runConnection(
  conn: Connection,
  keyLog: string = conn.keyLog,
  how: Chunking = "records",
  order: Order = "c2s-first",
  extra: Partial<TlsSessionOptions> = {},
): Run {
  const keys = createKeyStore();
  keys.addKeyLog(keyLog, 0);
  const { session, result } = start({ keys, ...extra });
  feed(session, chunk(conn.c2s, how, 7), chunk(conn.s2c, how, 11), order);
  session.finish();
  return result();
}

/** The RFC 8448 section 3 connection, record by record. */
const RFC8448: Connection = {
  c2s: [
    V.CLIENT_HELLO_RECORD,
    V.CLIENT_FINISHED_RECORD,
    V.CLIENT_APPLICATION_RECORD,
    V.CLIENT_ALERT_RECORD,
  ].map((b) => Buffer.from(b)),
  s2c: [
    V.SERVER_HELLO_RECORD,
    V.SERVER_FLIGHT_RECORD,
    V.SERVER_TICKET_RECORD,
    V.SERVER_APPLICATION_RECORD,
    V.SERVER_ALERT_RECORD,
  ].map((b) => Buffer.from(b)),
  keyLog: V.rfc8448KeyLog(),
  clientRandom: Buffer.from(V.CLIENT_RANDOM),
  c2sData: Buffer.from(V.APPLICATION_PAYLOAD),
  s2cData: Buffer.from(V.APPLICATION_PAYLOAD),
};

const dropLabels = (keyLog: string, ...labels: string[]) =>
  keyLog
    .split("\n")
    .filter((l) => !labels.some((label) => l.startsWith(`${label} `)))
    .join("\n");

describe("tls session - RFC 8448 section 3 connection", () => {
  for (const how of ["records", "whole", "bytes", "random"] as const) {
    for (const order of ["c2s-first", "s2c-first", "interleaved"] as const) {
      it(`tls session - RFC 8448 decrypts both directions (${how}, ${order})`, () => {
        const r = runConnection(RFC8448, undefined, how, order);
        assert.deepEqual(r.data, [RFC8448.c2sData, RFC8448.s2cData]);
        assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted);
        assert.equal(r.handshakes, 1);
        assert.deepEqual(
          [...r.alerts].sort((a, b) => a[0] - b[0]),
          [
            [0, 1, 0],
            [1, 1, 0],
          ],
        );
      });
    }
  }

  it("tls session - handshake info and counters", () => {
    const r = runConnection(RFC8448);
    const info = r.session.info;
    assert.equal(info.version, 0x0304);
    assert.equal(info.versionName, "TLS 1.3");
    assert.equal(info.cipherSuiteName, "TLS_AES_128_GCM_SHA256");
    assert.equal(info.serverName, "server");
    assert.deepEqual(Buffer.from(info.clientRandom!), Buffer.from(V.CLIENT_RANDOM));
    assert.deepEqual(info.keyShareGroups, [0x001d]);
    assert.deepEqual(info.supportedVersions, [0x0304]);
    assert.equal(info.helloRetryRequest, false);
    assert.equal(info.resumed, false);
    const [c, s] = r.session.stats.directions;
    assert.equal(c.recordsDecrypted, 3);
    assert.equal(s.recordsDecrypted, 4);
    assert.equal(s.newSessionTickets, 1);
    assert.equal(s.handshakeMessages, 1 + 4 + 1, "ServerHello, the four flight messages, the ticket");
    assert.equal(c.applicationBytes, 50);
    assert.equal(r.session.stats.directions[0].queuedBytes, 0);
  });

  it("tls session - application secrets only: handshake records are skipped, application data decrypts", () => {
    const keyLog = dropLabels(
      RFC8448.keyLog,
      "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
      "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    );
    for (const order of ["c2s-first", "s2c-first", "interleaved"] as const) {
      const r = runConnection(RFC8448, keyLog, "random", order);
      assert.deepEqual(r.data, [RFC8448.c2sData, RFC8448.s2cData], order);
      assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted, order);
      assert.equal(r.session.stats.directions[0].skippedRecords, 1, "the client Finished");
      assert.equal(r.session.stats.directions[1].skippedRecords, 1, "the server's handshake flight");
      assert.equal(
        r.needKeys.length,
        0,
        "no waiting: a later secret is there, so the earlier one never comes",
      );
    }
  });

  it("tls session - handshake secrets only: the handshake decrypts, application data is no-keys", () => {
    const keyLog = dropLabels(RFC8448.keyLog, "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0");
    const r = runConnection(RFC8448, keyLog);
    assert.deepEqual(r.data, [Buffer.alloc(0), Buffer.alloc(0)]);
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.NoKeys);
    assert.equal(r.session.stats.directions[1].recordsDecrypted, 1, "the handshake flight");
    assert.deepEqual(
      r.needKeys.map((k) => [...k.labels].sort()),
      [
        [KeyLogLabel.ClientTrafficSecret0],
        [KeyLogLabel.ClientTrafficSecret0, KeyLogLabel.ServerTrafficSecret0].sort(),
      ],
    );
  });

  it("tls session - a wrong secret is an integrity failure of that direction only", () => {
    const keyLog = RFC8448.keyLog.replace(
      /^(SERVER_TRAFFIC_SECRET_0 \S+ )(.)/m,
      (_m, head: string, c: string) => head + (c === "0" ? "1" : "0"),
    );
    const r = runConnection(RFC8448, keyLog);
    assert.deepEqual(r.data[0], RFC8448.c2sData);
    assert.equal(r.data[1].length, 0);
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.IntegrityFailure);
    assert.equal(r.session.outcome.detail, "server: aead-tag");
    assert.equal(r.session.outcome.directions[1].stopReason, StopReason.IntegrityFailure);
    assert.equal(r.session.stats.directions[1].integrityFailures["aead-tag"], 1);
    assert.equal(r.session.outcome.directions[0].state, "open");
  });

  it("tls session - a client random logged twice: the set a record authenticates with is chosen, the other counted", () => {
    const wrong = RFC8448.keyLog.replace(
      /^(\S+ \S+ )(\S)/gm,
      (_m, head: string, c: string) => head + (c === "0" ? "1" : "0"),
    );
    for (const [name, keyLog, rejected] of [
      ["wrong set first", wrong + RFC8448.keyLog, 1],
      ["right set first", RFC8448.keyLog + wrong, 0],
    ] as const) {
      const r = runConnection(RFC8448, keyLog);
      assert.deepEqual(r.data, [RFC8448.c2sData, RFC8448.s2cData], name);
      assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted, name);
      assert.equal(r.session.stats.candidatesRejected, rejected, name);
      const chosen = r.session.verifiedSecrets?.[KeyLogLabel.ServerHandshakeTrafficSecret];
      assert.ok(chosen, name);
      assert.ok(
        RFC8448.keyLog.includes(Buffer.from(chosen).toString("hex")),
        `${name}: the right set is chosen`,
      );
    }
    const r = runConnection(RFC8448, wrong + wrong.replace(/^(\S+ \S+ )(\S)(\S)/gm, "$1$3$2"));
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.IntegrityFailure, "no set authenticates");
    assert.equal(r.session.stats.candidatesRejected, 1);
    assert.equal(r.session.verifiedSecrets, undefined);
  });

  it("tls session - TLS 1.2: of two master secrets for one client random, the one that authenticates wins", () => {
    const conn = tls12Connection({ records: 2 });
    const master = /^CLIENT_RANDOM (\S+) (\S+)$/m.exec(conn.keyLog)!;
    const wrongLine = `CLIENT_RANDOM ${master[1]} ${"5a".repeat(48)}\n`;
    for (const keyLog of [wrongLine + conn.keyLog, conn.keyLog + wrongLine]) {
      const r = runConnection(conn, keyLog, "random", "interleaved");
      assert.deepEqual(r.data, [conn.c2sData, conn.s2cData]);
      assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted);
      assert.equal(r.session.stats.candidatesRejected, keyLog.startsWith(wrongLine) ? 1 : 0);
    }
  });

  it("tls session - a corrupted record stops the direction, later records are ignored, nothing throws", () => {
    const s2c = RFC8448.s2c.map((b) => Buffer.from(b));
    s2c[3]![30] = s2c[3]![30]! ^ 0x80; // the server's application data record
    const r = runConnection({ ...RFC8448, s2c });
    assert.equal(r.data[1].length, 0);
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.IntegrityFailure);
    assert.equal(r.session.stats.directions[1].ignoredBytes, V.SERVER_ALERT_RECORD.length);
    assert.deepEqual(r.data[0], RFC8448.c2sData);
  });
});

describe("tls session - keys that arrive late, or never", () => {
  it("tls session - with no keys yet, records are queued and needKeys names what is missing", async () => {
    const keys = createKeyStore();
    const { session, result } = start({ keys });
    feed(session, RFC8448.c2s, RFC8448.s2c, "interleaved");
    let r = result();
    assert.deepEqual(r.data, [Buffer.alloc(0), Buffer.alloc(0)]);
    assert.equal(session.outcome.kind, TlsOutcomeKind.WaitingForKeys);
    assert.equal(r.needKeys.length, 2, "once per direction");
    const pending = session.pendingKeys!;
    assert.deepEqual(Buffer.from(pending.clientRandom), Buffer.from(V.CLIENT_RANDOM));
    assert.deepEqual([...pending.labels].sort(), [
      KeyLogLabel.ClientHandshakeTrafficSecret,
      KeyLogLabel.ClientTrafficSecret0,
      KeyLogLabel.ServerHandshakeTrafficSecret,
      KeyLogLabel.ServerTrafficSecret0,
    ]);
    assert.ok(session.stats.directions[1].queuedBytes > 0);

    const wait = keys.waitForKeys(pending.clientRandom, pending.labels, { deadlineMs: 60_000 });
    keys.addKeyLog(RFC8448.keyLog, 10);
    assert.equal((await wait).status, KeyWaitStatus.Ready);
    session.keysAvailable();
    r = result();
    assert.deepEqual(r.data, [RFC8448.c2sData, RFC8448.s2cData]);
    assert.equal(session.outcome.kind, TlsOutcomeKind.KeysLate);
    assert.equal(session.pendingKeys, undefined);
    assert.equal(session.stats.directions[1].queuedBytes, 0);
    assert.ok(session.stats.directions[1].maxQueuedBytes > 0);
  });

  it("tls session - keys landing between pushes are picked up by the next push", () => {
    const keys = createKeyStore();
    const { session, result } = start({ keys });
    feed(session, RFC8448.c2s.slice(0, 2), RFC8448.s2c.slice(0, 3), "c2s-first");
    keys.addKeyLog(RFC8448.keyLog, 1);
    feed(session, RFC8448.c2s.slice(2), RFC8448.s2c.slice(3), "c2s-first");
    assert.deepEqual(result().data, [RFC8448.c2sData, RFC8448.s2cData]);
    assert.equal(session.outcome.kind, TlsOutcomeKind.KeysLate);
  });

  it("tls session - giving up frees the queue and reports no-keys", () => {
    const { session, result } = start({ keys: () => undefined });
    feed(session, RFC8448.c2s, RFC8448.s2c, "c2s-first");
    session.giveUpKeys();
    assert.equal(session.outcome.kind, TlsOutcomeKind.NoKeys);
    assert.deepEqual(result().data, [Buffer.alloc(0), Buffer.alloc(0)]);
    for (const d of session.stats.directions) {
      assert.equal(d.queuedBytes, 0);
      assert.ok(d.ignoredBytes > 0);
    }
    session.push(1, RFC8448.s2c[3]!);
    assert.equal(session.outcome.kind, TlsOutcomeKind.NoKeys);
  });

  it("tls session - the queue cap stops the direction with buffer-overflow, counted", () => {
    const { session } = start({ keys: () => undefined, maxBufferedBytes: 600 });
    feed(session, RFC8448.c2s, RFC8448.s2c, "s2c-first");
    assert.equal(session.outcome.kind, TlsOutcomeKind.BufferOverflow);
    assert.equal(session.outcome.directions[1].stopReason, StopReason.BufferOverflow);
    assert.equal(session.stats.bufferOverflows, 1);
  });

  it("tls session - the server direction waits for the ClientHello when it comes first", () => {
    const keys = createKeyStore();
    keys.addKeyLog(RFC8448.keyLog, 0);
    const { session, result } = start({ keys });
    for (const b of RFC8448.s2c) session.push(1, b);
    assert.equal(session.outcome.directions[1].waitingFor, "client-hello");
    assert.equal(result().data[1].length, 0);
    for (const b of RFC8448.c2s) session.push(0, b);
    assert.deepEqual(result().data, [RFC8448.c2sData, RFC8448.s2cData]);
  });

  it("tls session - finish() while a direction still waits for a hello reports no-handshake", () => {
    const { session } = start({ keys: () => undefined });
    for (const b of RFC8448.s2c) session.push(1, b);
    session.finish();
    assert.equal(session.outcome.kind, TlsOutcomeKind.NoHandshake);
    session.push(0, RFC8448.c2s[0]!);
    assert.equal(
      session.stats.directions[0].ignoredBytes,
      RFC8448.c2s[0]!.length,
      "pushes after finish are ignored",
    );
  });
});

describe("tls session - gaps, non-TLS traffic, malformed input", () => {
  it("tls session - a gap stops its direction after what came before it", () => {
    const keys = createKeyStore();
    keys.addKeyLog(RFC8448.keyLog, 0);
    const { session, result } = start({ keys });
    for (const b of RFC8448.c2s) session.push(0, b);
    for (const b of RFC8448.s2c.slice(0, 3)) session.push(1, b);
    session.push(1, RFC8448.s2c[3]!.subarray(0, 20));
    session.gap(1, 1000);
    session.push(1, RFC8448.s2c[4]!);
    session.finish();
    const r = result();
    assert.deepEqual(r.data, [RFC8448.c2sData, Buffer.alloc(0)]);
    assert.equal(session.outcome.kind, TlsOutcomeKind.Gap);
    assert.equal(session.outcome.detail, "server: hole of 1000 bytes");
    assert.equal(session.stats.directions[1].truncatedBytes, 20);
    assert.equal(session.stats.directions[1].ignoredBytes, RFC8448.s2c[4]!.length);
    assert.equal(session.stats.directions[1].newSessionTickets, 1, "records before the gap were processed");
  });

  it("tls session - a gap while waiting for keys keeps the queued records before it", () => {
    const keys = createKeyStore();
    const { session, result } = start({ keys });
    for (const b of RFC8448.c2s) session.push(0, b);
    for (const b of RFC8448.s2c) session.push(1, b);
    session.gap(1, 10);
    keys.addKeyLog(RFC8448.keyLog, 0);
    session.keysAvailable();
    assert.deepEqual(result().data, [RFC8448.c2sData, RFC8448.s2cData]);
    assert.equal(session.outcome.directions[1].stopReason, StopReason.Gap);
  });

  const notTls = [
    ["plain HTTP on port 443", 0, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"],
    ["an SMTP banner from the server", 1, "220 mail.example.com ESMTP\r\n"],
    ["an SSH banner", 0, "SSH-2.0-OpenSSH_9.6\r\n"],
    ["a handshake record that is not a ClientHello", 0, "\x16\x03\x01\x00\x04\x0b\x00\x00\x00"],
    ["application data first", 0, "\x17\x03\x03\x00\x01\x00"],
  ] as const;
  for (const [name, direction, text] of notTls) {
    it(`tls session - ${name} is not TLS`, () => {
      const { session } = start({ keys: () => undefined });
      session.push(direction, Buffer.from(text, "latin1"));
      assert.equal(session.outcome.kind, TlsOutcomeKind.NotTls);
      session.push(direction === 0 ? 1 : 0, Buffer.from("HTTP/1.1 200 OK\r\n"));
      assert.equal(session.outcome.kind, TlsOutcomeKind.NotTls);
    });
  }

  it("tls session - not TLS is recognised from the first byte", () => {
    const { session } = start({ keys: () => undefined });
    session.push(0, Buffer.from("G"));
    assert.equal(session.outcome.kind, TlsOutcomeKind.NotTls);
    assert.match(session.outcome.detail ?? "", /bad-content-type/);
    const second = start({ keys: () => undefined }).session;
    second.push(0, Buffer.from([0x16]));
    assert.equal(second.outcome.kind, TlsOutcomeKind.Pending);
    second.push(0, Buffer.from([0x04]));
    assert.equal(second.outcome.kind, TlsOutcomeKind.NotTls);
  });

  it("tls session - broken framing after the hello is malformed, not 'not TLS'", () => {
    const keys = createKeyStore();
    keys.addKeyLog(RFC8448.keyLog, 0);
    const { session } = start({ keys });
    session.push(0, RFC8448.c2s[0]!);
    session.push(0, Buffer.from("junk"));
    assert.equal(session.outcome.kind, TlsOutcomeKind.Malformed);
    assert.equal(session.outcome.directions[0].stopReason, StopReason.Malformed);
  });

  it("tls session - invalid use is a typed error", () => {
    assert.throws(() => createTlsSession({ keys: 42 as never }), TlsOptionError);
    assert.throws(() => createTlsSession({ keys: () => undefined, maxSkippedRecords: -1 }), TlsOptionError);
    const session = createTlsSession({ keys: () => undefined });
    assert.throws(() => session.push(2 as TlsDirection, new Uint8Array(1)), TlsArgumentError);
    const reentrant = createTlsSession({
      keys: () => undefined,
      output: { handshake: () => reentrant.push(0, new Uint8Array(0)) },
    });
    assert.throws(() => reentrant.push(1, RFC8448.s2c[0]!), TlsArgumentError);
  });

  it("tls session - an exception from an output callback reaches the caller unchanged", () => {
    const keys = createKeyStore();
    keys.addKeyLog(RFC8448.keyLog, 0);
    const boom = new Error("consumer failed");
    const session = createTlsSession({
      keys,
      output: {
        applicationData() {
          throw boom;
        },
      },
    });
    session.push(0, RFC8448.c2s[0]!);
    for (const b of RFC8448.s2c.slice(0, 3)) session.push(1, b);
    assert.throws(
      () => session.push(1, RFC8448.s2c[3]!),
      (err) => err === boom,
    );
    session.push(1, RFC8448.s2c[4]!);
    assert.equal(session.stats.directions[1].ignoredBytes, RFC8448.s2c[4]!.length, "later input is ignored");
  });
});

describe("tls session - unsupported suites and versions", () => {
  const serverHello = (suite: number, version = 0x0303) =>
    plainRecord(
      22,
      0x0303,
      handshakeMessage(HandshakeType.ServerHello, serverHelloBody({ random: pattern(32), suite, version })),
    );
  const clientHello = plainRecord(
    22,
    0x0301,
    handshakeMessage(
      HandshakeType.ClientHello,
      clientHelloBody({ random: pattern(32, 5), suites: [0x0005, 0x1234] }),
    ),
  );
  const cases = [
    [
      0x0005,
      0x0303,
      TlsOutcomeKind.UnsupportedSuite,
      "TLS_RSA_WITH_RC4_128_SHA (rc4-128 not available in node:crypto)",
    ],
    [0x1234, 0x0303, TlsOutcomeKind.UnsupportedSuite, "0x1234 (not in the suite table)"],
    [0x1301, 0x0303, TlsOutcomeKind.UnsupportedSuite, "TLS_AES_128_GCM_SHA256 is not a TLS 1.2 suite"],
    [
      0xc02f,
      0x0302,
      TlsOutcomeKind.UnsupportedSuite,
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 is not a TLS 1.1 suite",
    ],
    [0x002f, 0x0300, TlsOutcomeKind.UnsupportedVersion, "SSL 3.0"],
  ] as const;
  for (const [suite, version, kind, detail] of cases) {
    it(`tls session - ${detail}`, () => {
      const { session, result } = start({ keys: () => undefined });
      session.push(0, clientHello);
      session.push(1, serverHello(suite, version));
      assert.equal(session.outcome.kind, kind);
      assert.equal(session.outcome.detail, detail);
      assert.equal(result().handshakes, 0);
    });
  }
});

describe("tls session - TLS 1.0 to 1.2 connections", () => {
  const cases = [
    ["TLS 1.2 AES-128-GCM", { suite: 0xc02f }],
    ["TLS 1.2 AES-256-GCM", { suite: 0xc030 }],
    ["TLS 1.2 ChaCha20-Poly1305", { suite: 0xcca8 }],
    ["TLS 1.2 AES-128-CCM-8", { suite: 0xc0ae }],
    ["TLS 1.2 AES-128-CBC-SHA256 MtE", { suite: 0xc027 }],
    ["TLS 1.2 AES-256-CBC-SHA384 EtM", { suite: 0xc028, encryptThenMac: true }],
    ["TLS 1.1 AES-128-CBC-SHA", { suite: 0xc013, version: 0x0302 }],
    ["TLS 1.0 AES-256-CBC-SHA (chained IV)", { suite: 0xc014, version: 0x0301 }],
    ["TLS 1.0 AES-128-CBC-SHA EtM (chained IV)", { suite: 0x002f, version: 0x0301, encryptThenMac: true }],
    ["TLS 1.0 3DES-EDE-CBC-SHA", { suite: 0x000a, version: 0x0301 }],
    ["TLS 1.2 resumed (abbreviated handshake)", { suite: 0xc02f, resumed: true }],
  ] as const;
  for (const [name, options] of cases) {
    it(`tls session - ${name}`, () => {
      const conn = tls12Connection({ ...options, records: 4, recordSize: 700 });
      for (const how of ["records", "random", "whole"] as const) {
        for (const order of ["c2s-first", "s2c-first", "interleaved"] as const) {
          const r = runConnection(conn, undefined, how, order);
          assert.deepEqual(r.data, [conn.c2sData, conn.s2cData], `${how} ${order}`);
          assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted, `${how} ${order}`);
          assert.equal(r.chunks[0], 4, "one plaintext chunk per record");
        }
      }
      const info = runConnection(conn).session.info;
      assert.equal(info.version, "version" in options ? options.version : 0x0303);
      assert.equal(info.cipherSuite, options.suite);
      assert.equal(info.serverName, "tls12.example");
      assert.equal(info.alpn, "http/1.1");
      assert.equal(info.extendedMasterSecret, true);
      assert.equal(info.encryptThenMac, "encryptThenMac" in options && options.encryptThenMac);
      assert.equal(info.resumed, "resumed" in options && options.resumed);
    });
  }

  it("tls session - TLS 1.2 without its CLIENT_RANDOM line waits, then reports no-keys", () => {
    const conn = tls12Connection();
    const r = runConnection(conn, "# nothing\n");
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.NoKeys);
    assert.deepEqual(
      r.needKeys.map((k) => k.labels),
      [[KeyLogLabel.ClientRandom], [KeyLogLabel.ClientRandom]],
    );
    assert.deepEqual(Buffer.from(r.needKeys[0]!.clientRandom), conn.clientRandom);
  });
});

describe("tls session - TLS 1.3 connections", () => {
  const cases = [
    ["AES-128-GCM", { suite: 0x1301 }],
    ["AES-256-GCM with ALPN", { suite: 0x1302, alpn: "h2" }],
    ["ChaCha20-Poly1305", { suite: 0x1303 }],
    ["AES-128-CCM", { suite: 0x1304 }],
    ["AES-128-CCM-8", { suite: 0x1305 }],
    ["KeyUpdate in both directions", { suite: 0x1302, keyUpdate: true }],
    ["HelloRetryRequest", { suite: 0x1301, helloRetryRequest: true }],
    ["0-RTT early data", { suite: 0x1301, earlyData: true }],
  ] as const;
  for (const [name, options] of cases) {
    it(`tls session - TLS 1.3 ${name}`, () => {
      const conn = tls13Connection({ ...options, records: 4, recordSize: 900 });
      for (const how of ["records", "random", "bytes"] as const) {
        for (const order of ["c2s-first", "s2c-first", "interleaved"] as const) {
          const r = runConnection(conn, undefined, how, order);
          assert.deepEqual(r.data, [conn.c2sData, conn.s2cData], `${how} ${order}`);
          assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted, `${how} ${order}`);
        }
      }
      const r = runConnection(conn);
      const info = r.session.info;
      assert.equal(info.cipherSuite, options.suite);
      assert.equal(info.helloRetryRequest, "helloRetryRequest" in options);
      assert.equal(info.earlyDataOffered, "earlyData" in options);
      assert.equal(info.earlyDataAccepted, "earlyData" in options);
      assert.equal(info.alpn, "alpn" in options ? options.alpn : undefined);
      assert.equal(r.session.stats.directions[0].keyUpdates, "keyUpdate" in options ? 1 : 0);
      assert.equal(r.session.stats.directions[1].keyUpdates, "keyUpdate" in options ? 1 : 0);
    });
  }

  it("tls session - 0-RTT data without its secret is skipped, the rest decrypts", () => {
    const conn = tls13Connection({ earlyData: true, omit: ["CLIENT_EARLY_TRAFFIC_SECRET"] });
    const r = runConnection(conn, undefined, "random", "interleaved");
    assert.deepEqual(r.data[1], conn.s2cData);
    assert.deepEqual(r.data[0], conn.c2sData.subarray(300), "all but the 300 bytes of early data");
    assert.equal(
      r.session.stats.directions[0].skippedRecords,
      2,
      "the early data and EndOfEarlyData records",
    );
    assert.equal(r.needKeys.length, 0);
  });

  it("tls session - application secrets only, with KeyUpdate and HelloRetryRequest", () => {
    const conn = tls13Connection({
      suite: 0x1303,
      keyUpdate: true,
      helloRetryRequest: true,
      omit: ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"],
    });
    const r = runConnection(conn, undefined, "random", "s2c-first");
    assert.deepEqual(r.data, [conn.c2sData, conn.s2cData]);
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.Decrypted);
  });

  it("tls session - the skip budget bounds trial decryption of records no key opens", () => {
    const conn = tls13Connection({
      omit: ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"],
    });
    const r = runConnection(conn, undefined, "records", "c2s-first", { maxSkippedRecords: 1 });
    assert.equal(r.session.outcome.kind, TlsOutcomeKind.IntegrityFailure, "the server flight is two records");
    assert.deepEqual(r.data[0], conn.c2sData);
  });
});
