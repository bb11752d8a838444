import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { StatusService } from "@cloudtap/proto";
import { HealthStatus } from "../health.js";
import { SERVICE_IDENTITIES } from "../identity.js";
import { createRpcServer, registerService } from "../server.js";
import { serverCredentials } from "../tls.js";
import { HealthProbeUsageError, parseHealthProbeArgs, probeHealth } from "./health-probe.js";
import { MakePkiUsageError, makePki, parseMakePkiArgs } from "./make-pki.js";

const run = promisify(execFile);
const probeScript = fileURLToPath(new URL("./health-probe.ts", import.meta.url));

async function probeProcess(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, ["--import", "tsx", probeScript, ...args], { timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

test("rpc - health probe: arguments are checked by name", () => {
  assert.deepEqual(parseHealthProbeArgs(["127.0.0.1:7443"]), { address: "127.0.0.1:7443", timeoutMs: 3000 });
  assert.deepEqual(
    parseHealthProbeArgs(["[::1]:1", "--tls-dir", "/tls", "--identity", "stitcher", "--timeout", "500"]),
    { address: "[::1]:1", timeoutMs: 500, tlsDir: "/tls", identity: "stitcher" },
  );
  for (const bad of [
    [],
    ["a:1", "b:2"],
    ["no-port"],
    ["a:1", "--tls-dir", "/tls"],
    ["a:1", "--timeout", "0"],
    ["a:1", "--bogus", "x"],
    ["a:1", "--service"],
  ]) {
    assert.throws(() => parseHealthProbeArgs(bad), HealthProbeUsageError, JSON.stringify(bad));
  }
});

test("rpc - make-pki: one directory per identity, keys 0600, the CA kept on a second run", async () => {
  assert.throws(() => parseMakePkiArgs(["a", "--dns", "*.x"]), MakePkiUsageError);
  assert.throws(() => parseMakePkiArgs([]), MakePkiUsageError);
  const out = await mkdtemp(join(tmpdir(), "make-pki-"));
  try {
    const options = parseMakePkiArgs([out, "--dns", "stitcher-a", "--days", "30"]);
    assert.equal(await makePki(options), true);
    assert.deepEqual((await readdir(join(out, "ca"))).sort(), ["ca.crt", "ca.key"]);
    for (const id of SERVICE_IDENTITIES) {
      assert.deepEqual((await readdir(join(out, id))).sort(), ["ca.crt", `${id}.crt`, `${id}.key`]);
      assert.equal((await stat(join(out, id, `${id}.key`))).mode & 0o777, 0o600);
    }
    const before = (await stat(join(out, "ca", "ca.crt"))).mtimeMs;
    assert.equal(await makePki(options), false);
    assert.equal((await stat(join(out, "ca", "ca.crt"))).mtimeMs, before);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("rpc - health probe: SERVING over mutual TLS with another identity's certificate; not serving, unreachable and no certificate fail", async () => {
  const out = await mkdtemp(join(tmpdir(), "health-probe-"));
  try {
    await makePki(parseMakePkiArgs([out]));
    const server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: await serverCredentials(join(out, "key-broker"), "key-broker"),
      services: [
        registerService(
          StatusService,
          { getStatus: () => ({ service: "probe-test" }) },
          {
            allowedIdentities: ["stitcher"],
          },
        ),
      ],
    });
    const address = `127.0.0.1:${server.port}`;
    const mtls = { tlsDir: join(out, "fetcher"), identity: "fetcher", timeoutMs: 5000 };
    try {
      const ok = await probeHealth({ address, ...mtls, serverName: "key-broker" });
      assert.deepEqual(ok, { serving: true, message: `${address}: serving` });
      const wrongName = await probeHealth({ address, ...mtls, serverName: "mirror-egress" });
      assert.equal(wrongName.serving, false, wrongName.message);
      // Without --server-name the server must be the probe's own identity (here it is not).
      const ownName = await probeHealth({ address, ...mtls });
      assert.equal(ownName.serving, false, ownName.message);
      const plain = await probeHealth({ address, timeoutMs: 2000 });
      assert.equal(plain.serving, false, plain.message);

      // The program itself: exit 0 serving, 1 not serving, 2 bad arguments.
      const args = [
        address,
        "--tls-dir",
        mtls.tlsDir,
        "--identity",
        "fetcher",
        "--server-name",
        "key-broker",
      ];
      assert.equal((await probeProcess(args)).code, 0);
      server.health.set("", HealthStatus.NotServing);
      const down = await probeProcess(args);
      assert.equal(down.code, 1);
      assert.match(down.out, /not-serving/);
      assert.equal((await probeProcess(["nonsense"])).code, 2);
    } finally {
      await server.shutdown(500);
    }
    const gone = await probeHealth({ address, ...mtls, timeoutMs: 2000 });
    assert.equal(gone.serving, false);
    assert.match(gone.message, /unavailable|deadline/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
