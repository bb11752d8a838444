/**
 * Interop: every capture of the corpus (../shared/testdata/tls beside the repository, see its README) is split into TCP streams
 * by tshark, pushed segment by segment through a TlsSession with the capture's key log, and the decrypted
 * application data of each direction must match what Wireshark's dissector recovered (length and SHA-256).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import {
  CORPUS_DIR,
  type ExpectedStream,
  type FollowedStream,
  followTcpStreams,
  type ManifestCapture,
  pcapngTlsKeyLog,
  readExpected,
  readManifest,
  requireCorpus,
  requireTshark,
  sameEndpoint,
} from "../test/test-corpus.js";
import { createKeyStore } from "./key-store.js";
import type { TlsDirection } from "./session-report.js";
import { createTlsSession, type TlsSession } from "./tls-session.js";

requireCorpus();
const captures = readManifest();

function keyLogOf(capture: ManifestCapture): string {
  if (capture.keylog) return readFileSync(new URL(capture.keylog, CORPUS_DIR), "utf8");
  return pcapngTlsKeyLog(readFileSync(new URL(capture.file, CORPUS_DIR)));
}

interface Decoded {
  readonly session: TlsSession;
  readonly bytes: [number, number];
  readonly sha256: [string, string];
}

/**
 * Pushes one followed stream (client = the expected's client endpoint) through a session, segment by segment
 * in capture order. With `lateKeys`, the session starts with no keys; they are added after every segment was
 * pushed, and the session is told.
 */
function decode(
  followed: FollowedStream,
  expected: ExpectedStream,
  keyLog: string,
  lateKeys = false,
): Decoded {
  const clientNode = sameEndpoint(followed.nodes[0], expected.client) ? 0 : 1;
  assert.ok(
    sameEndpoint(followed.nodes[clientNode], expected.client),
    `stream ${expected.tcp_stream}: client ${expected.client} is neither tshark node (${followed.nodes.join(", ")})`,
  );
  const keys = createKeyStore();
  if (!lateKeys) keys.addKeyLog(keyLog, 0);
  const hashes = [createHash("sha256"), createHash("sha256")];
  const bytes: [number, number] = [0, 0];
  const session = createTlsSession({
    keys,
    maxBufferedBytes: 4 * 1024 * 1024,
    output: {
      applicationData(direction, plaintext) {
        hashes[direction]!.update(plaintext);
        bytes[direction] += plaintext.length;
      },
    },
  });
  for (const segment of followed.segments) {
    const direction: TlsDirection = segment.node === clientNode ? 0 : 1;
    session.push(direction, segment.bytes);
  }
  if (lateKeys) {
    keys.addKeyLog(keyLog, 1);
    session.keysAvailable();
  }
  session.finish();
  return { session, bytes, sha256: [hashes[0]!.digest("hex"), hashes[1]!.digest("hex")] };
}

function checkStream(label: string, decoded: Decoded, stream: ExpectedStream, outcome: string): void {
  checkData(label, decoded, stream);
  if (stream.server_hello?.[0]) {
    const o = decoded.session.outcome;
    assert.equal(o.kind, outcome, `${label}: outcome ${JSON.stringify(o)}`);
  }
}

function checkData(label: string, decoded: Decoded, stream: ExpectedStream): void {
  const { session, bytes, sha256 } = decoded;
  assert.deepEqual(
    { c2s: { bytes: bytes[0], sha256: sha256[0] }, s2c: { bytes: bytes[1], sha256: sha256[1] } },
    {
      c2s: { bytes: stream.c2s.bytes, sha256: stream.c2s.sha256 },
      s2c: { bytes: stream.s2c.bytes, sha256: stream.s2c.sha256 },
    },
    `${label}: decrypted application data`,
  );
  const hello = stream.server_hello?.[0];
  if (hello) {
    const info = session.info;
    assert.equal(info.versionName, hello.version, `${label}: version`);
    assert.equal(info.cipherSuite, Number(hello.cipher_suite), `${label}: cipher suite`);
  }
}

const HANDSHAKE_LABELS = /^(CLIENT|SERVER)_HANDSHAKE_TRAFFIC_SECRET /;

describe("tls interop - corpus captures decrypt like Wireshark", () => {
  before(requireTshark);
  for (const capture of captures) {
    it(`interop - ${capture.id}`, async () => {
      const keyLog = keyLogOf(capture);
      assert.ok(createKeyStore().addKeyLog(keyLog, 0).added > 0, "the key log yields secrets");
      const expected = readExpected(capture.file);
      const followed = await followTcpStreams(
        new URL(capture.file, CORPUS_DIR).pathname,
        expected.map((s) => s.tcp_stream),
      );
      // Without the handshake traffic secrets, TLS 1.3 application data must still decrypt (TLS 1.2 is
      // unaffected: it has no such lines).
      const applicationOnly = keyLog
        .split(/\r?\n/)
        .filter((line) => !HANDSHAKE_LABELS.test(line))
        .join("\n");
      for (const stream of expected) {
        const f = followed.get(stream.tcp_stream);
        assert.ok(f, `tshark followed stream ${stream.tcp_stream}`);
        const label = `${capture.id} stream ${stream.tcp_stream}`;
        checkStream(label, decode(f, stream, keyLog), stream, "decrypted");
        const appOnly = decode(f, stream, applicationOnly);
        checkData(`${label} (application secrets only)`, appOnly, stream);
        // A direction whose key log has only handshake secrets (a client that never finished its handshake,
        // logged by the server) has no key left at all: no-keys is then the right outcome for it.
        for (const [i, status] of appOnly.session.outcome.directions.entries()) {
          if (status.stopReason === undefined) continue;
          assert.equal(status.stopReason, "no-keys", `${label} (application secrets only): direction ${i}`);
          assert.equal(i === 0 ? stream.c2s.bytes : stream.s2c.bytes, 0);
          const appLabel = i === 0 ? "CLIENT_TRAFFIC_SECRET_0" : "SERVER_TRAFFIC_SECRET_0";
          assert.match(status.stopDetail ?? "", new RegExp(appLabel));
          const full = createKeyStore();
          full.addKeyLog(keyLog, 0);
          assert.equal(
            full.lookup(appOnly.session.info.clientRandom!)?.[appLabel],
            undefined,
            "not in the key log",
          );
        }
        checkStream(`${label} (keys after the data)`, decode(f, stream, keyLog, true), stream, "keys-late");
      }
    });
  }
});
