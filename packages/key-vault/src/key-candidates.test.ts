/**
 * A client random logged twice through the mesh's key path: a real TLS 1.2 connection (node:tls in memory,
 * OpenSSL's key log), a key log naming its CLIENT_RANDOM first with a wrong master secret and then with the
 * right one, the broker ingesting it into the sealed vault on a real nats-server, KeyService over gRPC with
 * mutual TLS, and the stitcher's side as the mesh's stitch stage has it (the answer's lines into a
 * @cloudtap/tls key store, a TlsSession over the captured bytes). Both sets reach the stitcher, the session
 * tries the wrong one, then decrypts with the right one, and both sides count the duplicate.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { type Bus, connectBus } from "@cloudtap/bus";
import { KeyService } from "@cloudtap/proto";
import {
  certificatePath,
  clientCredentials,
  createClient,
  createPki,
  createRpcServer,
  privateKeyPath,
  type RpcServer,
  registerService,
  ServiceIdentity,
  serverCredentials,
} from "@cloudtap/rpc";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { createKeyStore, createTlsSession, KeyLogLabel, TlsOutcomeKind } from "@cloudtap/tls";
import { createKeyBroker, type KeyBroker } from "./key-broker.js";
import { keyServiceHandlers } from "./key-service.js";
import { openNatsVault } from "./nats-vault.js";

type Direction = 0 | 1;

interface Captured {
  readonly wire: [Direction, Buffer][];
  readonly keyLog: string;
  readonly sent: [Buffer, Buffer];
}

/** One TLS 1.2 connection between node:tls ends in memory: every byte each side wrote, and the key log. */
async function converse(certDir: string): Promise<Captured> {
  const wire: [Direction, Buffer][] = [];
  const ends: Duplex[] = [];
  for (const direction of [0, 1] as Direction[]) {
    ends.push(
      new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          wire.push([direction, Buffer.from(chunk)]);
          ends[1 - direction]!.push(chunk);
          callback();
        },
        final(callback) {
          ends[1 - direction]!.push(null);
          callback();
        },
      }),
    );
  }
  const server = new tls.TLSSocket(ends[1]!, {
    isServer: true,
    secureContext: tls.createSecureContext({
      key: readFileSync(privateKeyPath(certDir, ServiceIdentity.KeyBroker)),
      cert: readFileSync(certificatePath(certDir, ServiceIdentity.KeyBroker)),
    }),
  });
  const client = tls.connect({
    socket: ends[0]!,
    servername: "localhost",
    maxVersion: "TLSv1.2",
    rejectUnauthorized: false,
  });
  const keyLog: string[] = [];
  client.on("keylog", (line: Buffer) => keyLog.push(line.toString("latin1")));
  const failed = new Promise<never>((_, reject) => {
    client.on("error", reject);
    server.on("error", reject);
  });
  const answer = Buffer.from("answer from the server\n");
  const serverDone = new Promise<void>((resolve) => {
    server.once("data", () => server.write(answer));
    server.on("end", () => {
      server.end();
      resolve();
    });
  });
  await Promise.race([new Promise((resolve) => client.once("secureConnect", resolve)), failed]);
  const request = Buffer.from("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
  client.write(request);
  await Promise.race([new Promise((resolve) => client.once("data", resolve)), failed]);
  client.end();
  await Promise.race([serverDone, failed]);
  await new Promise((resolve) => setImmediate(resolve));
  return { wire, keyLog: keyLog.join(""), sent: [request, answer] };
}

describe("key-vault - a client random logged twice, through NATS and KeyService", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-key-candidates-"));
  let nats: NatsServer;
  let bus: Bus;
  let broker: KeyBroker;
  let server: RpcServer;
  before(async () => {
    await createPki(dir);
    nats = await startNatsServer({ jetstream: true });
    bus = await connectBus({ servers: nats.url, name: "key-candidates-test" });
    broker = createKeyBroker({ vault: await openNatsVault(bus, { key: randomBytes(32), ttlMs: 60_000 }) });
    server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: await serverCredentials(dir, ServiceIdentity.KeyBroker),
      services: [
        registerService(KeyService, keyServiceHandlers(broker), {
          allowedIdentities: [ServiceIdentity.Stitcher],
        }),
      ],
    });
  });
  after(async () => {
    await server?.shutdown(2000);
    await bus?.close();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test("key-vault - first secret wrong, second right: the stitcher gets both and decrypts with the second", async () => {
    const captured = await converse(dir);
    const line = /^CLIENT_RANDOM ([0-9a-f]{64}) ([0-9a-f]{96})$/m.exec(captured.keyLog);
    assert.ok(line, "OpenSSL logged a TLS 1.2 master secret");
    const [, randomHex, master] = line as unknown as [string, string, string];
    const wrong = master.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    const ingested = await broker.ingest(
      `CLIENT_RANDOM ${randomHex} ${wrong}\nCLIENT_RANDOM ${randomHex} ${master}\n`,
    );

    // The stitcher's side of the mesh: WaitForKeys over gRPC, the lines into its key store.
    const client = createClient(KeyService, `127.0.0.1:${server.port}`, {
      credentials: await clientCredentials(dir, ServiceIdentity.Stitcher),
      defaultTimeoutMs: 10_000,
    });
    let lines: string;
    try {
      const answer = await client.waitForKeys({
        clientRandoms: [Buffer.from(randomHex, "hex")],
        timeoutMs: 5000,
      });
      assert.equal(answer.missing.length, 0);
      assert.equal(answer.entries.length, 1);
      lines = answer.entries[0]!.keyLogLines;
    } finally {
      client.close();
    }
    const keys = createKeyStore({ ttlMs: 24 * 3600 * 1000 });
    const added = keys.addKeyLog(lines, Date.now());
    const got: [Buffer[], Buffer[]] = [[], []];
    const session = createTlsSession({
      keys,
      output: { applicationData: (d, p) => got[d as Direction].push(Buffer.from(p)) },
    });
    for (const [direction, chunk] of captured.wire) session.push(direction, chunk);
    session.finish();
    assert.equal(session.outcome.kind, TlsOutcomeKind.Decrypted, JSON.stringify(session.outcome));
    assert.deepEqual([Buffer.concat(got[0]), Buffer.concat(got[1])], captured.sent);
    assert.equal(session.stats.candidatesRejected, 1, "the wrong set was tried and rejected");
    const chosen = session.verifiedSecrets?.[KeyLogLabel.ClientRandom];
    assert.equal(chosen && Buffer.from(chosen).toString("hex"), master);

    // Counted as the one-process path counts it: a conflict kept as a candidate, in the broker and the store.
    assert.deepEqual([ingested.added, ingested.conflicts, ingested.candidatesDropped], [1, 1, 0]);
    assert.equal(broker.stats.conflicts, 1);
    assert.equal(added.conflicts, 1);
    assert.equal(lines, `CLIENT_RANDOM ${randomHex} ${wrong}\nCLIENT_RANDOM ${randomHex} ${master}\n`);
  });
});
