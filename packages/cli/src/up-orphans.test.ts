/**
 * A `cloudtap up` killed with SIGKILL (no ordered stop) leaves nothing running: every service ends when its
 * stdin pipe from `up` closes, and the orphan watchdog ends nats-server. Within a bounded time none of the
 * pids in its mesh.json (nor the watchdog's) is alive.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLOUDTAP_BIN } from "@cloudtap/test-harness";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-up-orphans-"));
after(() => rmSync(dir, { recursive: true, force: true }));
/** Generous for a loaded machine; the services' own shutdown bound is 15 s, the watchdog's grace 10 s. */
const WITHIN_MS = 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("cloudtap up - killed with SIGKILL", () => {
  it("leaves none of its processes running", async (t) => {
    const store = join(dir, "store");
    mkdirSync(join(store, "data"), { recursive: true });
    const stateDir = join(dir, "state");
    const up = spawn(
      process.execPath,
      [CLOUDTAP_BIN, "up", "--source", store, "--pcapng", join(dir, "out.pcapng"), "--state-dir", stateDir],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    up.stderr!.on("data", (d) => {
      stderr += d;
    });
    up.stdout!.resume();
    const exited = once(up, "exit");
    const deadline = Date.now() + 180_000;
    while (!/up: continuous/.test(stderr)) {
      assert.equal(up.exitCode, null, `up exited: ${stderr}`);
      assert.ok(Date.now() < deadline, `up did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const state = JSON.parse(readFileSync(join(stateDir, "mesh.json"), "utf8")) as {
      watchdogPid?: number;
      instances: { name: string; pid?: number }[];
    };
    const pids = state.instances.map((i) => ({ name: i.name, pid: i.pid! }));
    assert.deepEqual(
      pids.map((p) => p.name),
      ["nats-server", "mirror-egress", "key-broker", "stitcher-1", "fetcher-1"],
    );
    assert.ok(state.watchdogPid, "mesh.json names the watchdog");
    pids.push({ name: "orphan-watchdog", pid: state.watchdogPid });
    for (const p of pids) assert.ok(alive(p.pid), `${p.name} runs before the kill`);

    up.kill("SIGKILL");
    await exited;
    const killedAt = Date.now();
    let left = pids;
    while (left.length > 0 && Date.now() - killedAt < WITHIN_MS) {
      await new Promise((r) => setTimeout(r, 200));
      left = left.filter((p) => alive(p.pid));
    }
    t.diagnostic(`every process ended ${Date.now() - killedAt} ms after the SIGKILL of up`);
    // Whatever is left is ended here, so a failing run leaves nothing behind either.
    for (const p of left) process.kill(p.pid, "SIGKILL");
    assert.deepEqual(
      left.map((p) => p.name),
      [],
      `still running ${WITHIN_MS} ms after up was killed`,
    );
  });
});
