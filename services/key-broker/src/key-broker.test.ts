/**
 * The key-broker as an OS process against a real nats-server and a directory key store: a stitcher looks
 * keys up over mutual TLS, other callers are refused, keys survive a restart of the broker (sealed in NATS
 * KV), and no secret ever shows in its log output.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openStore } from "@cloudtap/object-store";
import { KeyService, StatusService } from "@cloudtap/proto";
import {
  caCertificatePath,
  clientCredentials,
  createClient,
  createPki,
  ErrorCategory,
  RpcError,
  ServiceIdentity,
} from "@cloudtap/rpc";
import { keyLogKey } from "@cloudtap/tap-format";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import * as grpc from "@grpc/grpc-js";

const repoRoot = new URL("../../..", import.meta.url).pathname;
const T0 = 1_767_225_600_000_000_000n;

interface BrokerProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly port: Promise<number>;
}

function startBroker(env: Record<string, string>): BrokerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "services/key-broker/src/main.ts"], {
    cwd: repoRoot,
    env: { ...process.env, ...env, KEY_BROKER_LOG_LEVEL: "debug" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  let resolvePort!: (port: number) => void;
  let rejectPort!: (err: Error) => void;
  const port = new Promise<number>((resolve, reject) => {
    resolvePort = resolve;
    rejectPort = reject;
  });
  port.catch(() => {}); // a process expected to fail at start is never asked for its port
  let buffered = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => output.push(d));
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    output.push(d);
    buffered += d;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line["msg"] === "listening") resolvePort(line["port"] as number);
      } catch {
        // not a log line; kept in output
      }
    }
  });
  child.once("exit", (code) => rejectPort(new Error(`key-broker exited (${code}): ${output.join("")}`)));
  return { child, output, port };
}

async function stopBroker(broker: BrokerProcess): Promise<number | null> {
  const child = broker.child;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  return exited;
}

describe("key-broker - as a process with NATS, mutual TLS and a directory key store", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-key-broker-"));
  const tlsDir = join(dir, "tls");
  const storeDir = join(dir, "keys-store");
  const vaultKey = randomBytes(32).toString("hex");
  const randoms = [randomBytes(32), randomBytes(32)];
  const secrets = [randomBytes(48).toString("hex"), randomBytes(32).toString("hex")];
  const keyLog =
    `# written by the test\nCLIENT_RANDOM ${randoms[0]!.toString("hex")} ${secrets[0]}\n` +
    `CLIENT_TRAFFIC_SECRET_0 ${randoms[1]!.toString("hex")} ${secrets[1]}\n`;
  let nats: NatsServer;
  let env: Record<string, string>;
  const brokers: BrokerProcess[] = [];

  before(async () => {
    await createPki(tlsDir);
    nats = await startNatsServer({ jetstream: true });
    await openStore(storeDir).write(keyLogKey("", "tap-1", T0, 1n), new TextEncoder().encode(keyLog));
    env = {
      KEY_BROKER_LISTEN: "127.0.0.1:0",
      KEY_BROKER_KEYS_STORE: storeDir,
      KEY_BROKER_NATS_URL: nats.url,
      KEY_BROKER_TLS_DIR: tlsDir,
      KEY_BROKER_VAULT_KEY: vaultKey,
      KEY_BROKER_POLL_MS: "200",
      KEY_BROKER_TTL: "1h",
    };
  });
  after(async () => {
    for (const b of brokers) await stopBroker(b);
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function stitcherClient(port: number) {
    return createClient(KeyService, `127.0.0.1:${port}`, {
      credentials: await clientCredentials(tlsDir, ServiceIdentity.Stitcher),
      defaultTimeoutMs: 5000,
    });
  }

  it("key-broker - a missing or bad variable stops the start, naming it, never showing the vault key", async () => {
    const broker = startBroker({ ...env, KEY_BROKER_VAULT_KEY: "zz", KEY_BROKER_NATS_URL: "" });
    const code = await stopBrokerWhenExited(broker);
    assert.equal(code, 2);
    const text = broker.output.join("");
    assert.match(text, /KEY_BROKER_VAULT_KEY/);
    assert.match(text, /KEY_BROKER_NATS_URL/);
    assert.ok(!text.includes(vaultKey));
  });

  it("key-broker - the stitcher looks keys up; WaitForKeys answers what is missing", async () => {
    const broker = startBroker(env);
    brokers.push(broker);
    const port = await broker.port;
    const client = await stitcherClient(port);
    try {
      const waited = await client.waitForKeys({ clientRandoms: randoms, timeoutMs: 10_000 });
      assert.equal(waited.missing.length, 0);
      const found = await client.lookupKeys({ clientRandoms: [...randoms, randomBytes(32)] });
      assert.equal(found.entries.length, 2);
      assert.ok(found.entries[0]!.keyLogLines.includes(secrets[0]!));
      assert.ok(
        found.entries[1]!.keyLogLines.includes(`CLIENT_TRAFFIC_SECRET_0 ${randoms[1]!.toString("hex")}`),
      );
      const unknown = randomBytes(32);
      const partial = await client.waitForKeys({ clientRandoms: [randoms[0]!, unknown], timeoutMs: 300 });
      assert.equal(partial.entries.length, 1);
      assert.deepEqual(partial.missing, [new Uint8Array(unknown)]);
    } finally {
      client.close();
    }
  });

  it("key-broker - refused: the fetcher's identity, and a caller without a certificate", async () => {
    const port = await brokers[0]!.port;
    const fetcher = createClient(KeyService, `127.0.0.1:${port}`, {
      credentials: await clientCredentials(tlsDir, ServiceIdentity.Fetcher),
      defaultTimeoutMs: 5000,
    });
    const anonymous = createClient(KeyService, `127.0.0.1:${port}`, {
      credentials: grpc.credentials.createSsl(await readFile(caCertificatePath(tlsDir))),
      defaultTimeoutMs: 3000,
    });
    const cli = createClient(StatusService, `127.0.0.1:${port}`, {
      credentials: await clientCredentials(tlsDir, ServiceIdentity.Cli),
    });
    try {
      await assert.rejects(fetcher.lookupKeys({ clientRandoms: randoms }), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.category, ErrorCategory.PermissionDenied);
        return true;
      });
      await assert.rejects(anonymous.lookupKeys({ clientRandoms: randoms }), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, grpc.status.UNAVAILABLE);
        return true;
      });
      const status = await cli.getStatus({});
      assert.equal(status.service, "key-broker");
      assert.equal(status.state, "serving");
      assert.ok((status.counters["key_logs_ingested"] ?? 0) >= 1);
    } finally {
      fetcher.close();
      anonymous.close();
      cli.close();
    }
  });

  it("key-broker - keys survive a restart (sealed in NATS KV), and SIGTERM exits 0", async () => {
    assert.equal(await stopBroker(brokers[0]!), 0);
    // The key log is gone from the store: what the new process answers comes from the vault.
    await openStore(storeDir).delete(keyLogKey("", "tap-1", T0, 1n));
    const broker = startBroker(env);
    brokers.push(broker);
    const client = await stitcherClient(await broker.port);
    try {
      const found = await client.lookupKeys({ clientRandoms: randoms });
      assert.equal(found.entries.length, 2);
      assert.ok(found.entries[0]!.keyLogLines.includes(secrets[0]!));
    } finally {
      client.close();
    }
    assert.equal(await stopBroker(broker), 0);
  });

  it("key-broker - no secret, client random or vault key in any log output", () => {
    const text = brokers.map((b) => b.output.join("")).join("");
    assert.match(text, /"msg":"service config"/);
    assert.match(text, /"KEY_BROKER_VAULT_KEY":"\[redacted\]"/);
    assert.match(text, /"msg":"key log read"/);
    for (const s of [...secrets, vaultKey, ...randoms.map((r) => r.toString("hex"))]) {
      assert.ok(!text.toLowerCase().includes(s.toLowerCase()), "a secret appeared in the log");
    }
  });
});

async function stopBrokerWhenExited(broker: BrokerProcess): Promise<number | null> {
  if (broker.child.exitCode !== null) return broker.child.exitCode;
  const code = await new Promise<number | null>((r) => broker.child.once("exit", (c) => r(c)));
  await new Promise((r) => setTimeout(r, 20)); // let the last output arrive
  return code;
}
