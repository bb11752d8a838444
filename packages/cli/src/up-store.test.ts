/**
 * `cloudtap up` on a store it cannot open: a directory that does not exist, an s3:// bucket with credentials
 * the store refuses. With --once the run stops at the first such exit (status 3 of the fetcher or the
 * key-broker, never restarted) and exits 1 naming the instance and the store; continuous, the instance is
 * retried with a growing delay and `cloudtap status` shows it down with the reason.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLOUDTAP_BIN, startS3rver } from "@cloudtap/test-harness";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-up-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface StateFile {
  instances: {
    name: string;
    pid?: number;
    restarts: number;
    lastExit?: { code: number | null; reason?: string };
    restartAt?: string;
  }[];
}
const readState = (stateDir: string) =>
  JSON.parse(readFileSync(join(stateDir, "mesh.json"), "utf8")) as StateFile;

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `cloudtap up --once`, bounded by a generous timeout (a run that keeps restarting is killed and fails). */
function upOnce(name: string, ...args: string[]) {
  const stateDir = join(dir, name);
  const r = spawnSync(
    process.execPath,
    [CLOUDTAP_BIN, "up", "--once", "--pcapng", join(dir, `${name}.pcapng`), "--state-dir", stateDir, ...args],
    { encoding: "utf8", timeout: 240_000, killSignal: "SIGKILL" },
  );
  return { status: r.status, signal: r.signal, stderr: r.stderr, stdout: r.stdout, stateDir };
}

function assertFailedOnce(r: ReturnType<typeof upOnce>, instance: string, message: RegExp): void {
  assert.equal(r.signal, null, `up was still running after the timeout: ${r.stderr}`);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /MeshInstanceFailedError/);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stdout, /window done/);
  const state = readState(r.stateDir);
  const failed = state.instances.find((i) => i.name === instance);
  assert.ok(failed, `${instance} in mesh.json`);
  assert.equal(failed.restarts, 0, "not restarted");
  assert.equal(failed.lastExit?.code, 3);
  assert.match(failed.lastExit?.reason ?? "", message);
  for (const i of state.instances) assert.ok(!alive(i.pid), `${i.name} (pid ${i.pid}) stopped`);
}

describe("cloudtap up - a store it cannot open", () => {
  const missing = join(dir, "no-such-store");

  it("--once, a missing directory: the key-broker (first to open it) fails the run, naming the store", () => {
    const r = upOnce("missing", "--source", missing);
    assertFailedOnce(
      r,
      "key-broker",
      new RegExp(`key store cannot be opened: ${missing}: no such file or directory`),
    );
  });

  it("--once --no-keys, a missing directory: the fetcher fails the run, naming the store", () => {
    const r = upOnce("missing-nokeys", "--no-keys", "--source", missing);
    assertFailedOnce(
      r,
      "fetcher-1",
      new RegExp(`store cannot be opened: ${missing}: no such file or directory`),
    );
  });

  it("--once --no-keys, an s3:// bucket whose credentials are refused: the fetcher fails the run", async () => {
    const good = { accessKeyId: "UPSTORE0000000000001", secretAccessKey: "up-store-secret-0001" };
    const s3 = await startS3rver({ buckets: ["tap-data"], keyPairs: [good] });
    try {
      // s3rver checks the access key id, not the signature: an unknown key id is what it refuses.
      const creds = join(dir, "unknown.json");
      writeFileSync(
        creds,
        JSON.stringify({
          access_key_id: "NOSUCHKEY00000000001",
          secret_access_key: "not-a-secret-that-works",
        }),
      );
      const url = `s3://tap-data/t1?endpoint=${s3.endpoint}&path_style=true&region=us-east-1`;
      const r = upOnce("s3-refused", "--no-keys", "--source", url, "--credentials", creds);
      assertFailedOnce(r, "fetcher-1", /store cannot be opened: s3:\/\/tap-data\/t1.*credentials refused/);
      assert.match(r.stderr, /credentials file .*unknown\.json/);
      assert.doesNotMatch(r.stderr, /not-a-secret-that-works/, "no secret in the message");
    } finally {
      await s3.cleanup();
    }
  });

  it("continuous: the mesh keeps running, the fetcher is retried with a delay and status says why", async () => {
    const stateDir = join(dir, "continuous");
    const up = spawn(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "up",
        "--no-keys",
        "--source",
        missing,
        "--pcapng",
        join(dir, "c.pcapng"),
        "--state-dir",
        stateDir,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    up.stderr!.on("data", (d) => {
      stderr += d;
    });
    up.stdout!.resume();
    const exited = once(up, "exit");
    try {
      const deadline = Date.now() + 180_000;
      while (!/up: continuous/.test(stderr)) {
        assert.equal(up.exitCode, null, `up exited: ${stderr}`);
        assert.ok(Date.now() < deadline, `up did not reach continuous mode: ${stderr}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.match(
        stderr,
        /up: fetcher-1 cannot run: store cannot be opened: .*no such file or directory; retried at/,
      );
      const fetcher = readState(stateDir).instances.find((i) => i.name === "fetcher-1");
      assert.equal(fetcher?.lastExit?.code, 3);
      const status = spawnSync(process.execPath, [CLOUDTAP_BIN, "status", "--state-dir", stateDir], {
        encoding: "utf8",
        timeout: 120_000,
      });
      assert.equal(status.status, 1, "an instance is down");
      assert.match(
        status.stdout,
        /fetcher-1 .*DOWN: [^\n]*\n {4}last exit status 3 at [^:]+:[^:]+:[^:]+: store cannot be opened: [^\n]*no such file or directory(; next restart at \S+)?\n/,
      );
    } finally {
      up.kill("SIGTERM");
      await exited;
    }
    assert.equal(up.exitCode, 0, stderr);
  });
});
