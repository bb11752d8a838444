/**
 * Continuous mode of the one-process stitcher (`cloudtap stitch --follow --state FILE`) against a store
 * that fills while it runs: the simulator's blobs and key logs are copied in over time, shuffled within
 * groups that stay inside the lateness window (tappers writing in parallel). Judged by tshark: every TCP
 * connection of the manifest carries its bytes per direction; no packet is in the file twice (beyond what a
 * one-shot run of the same store has: none); SIGTERM stops the run within seconds with a complete file;
 * a SIGKILL in the middle of the run and a restart with the same state lose nothing and write nothing
 * twice.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { assertTcpMatchesManifest, CLOUDTAP_BIN } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";

/** A blob's or key log's start time, from its key (`<20-digit start ns>-<sequence>` in its name). */
function startOf(key: string): bigint {
  const m = /\/(\d{20})-\d{10}[^/]*$/.exec(key);
  return m ? BigInt(m[1]!) : 0n;
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** The blobs and key logs of a store as keys, in start-time order. */
function storeObjects(store: string): string[] {
  const keys = walk(store)
    .map((p) => relative(store, p))
    .filter((k) => k.startsWith("data/") || k.startsWith("keys/"));
  return keys.sort((a, b) => {
    const x = startOf(a);
    const y = startOf(b);
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : 1;
  });
}

/** A small deterministic shuffle (xorshift), so a failure can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Groups of `size` consecutive objects (by start time), each group shuffled. */
function landingOrder(keys: readonly string[], size: number, seed: number): string[][] {
  const groups: string[][] = [];
  for (let i = 0; i < keys.length; i += size) groups.push(shuffled(keys.slice(i, i + size), seed + i));
  return groups;
}

/** The longest start-time spread of a group: the lateness window the run needs. */
function spreadNs(groups: readonly string[][]): bigint {
  let max = 0n;
  for (const g of groups) {
    const starts = g.map(startOf);
    let lo = starts[0]!;
    let hi = starts[0]!;
    for (const s of starts) {
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    if (hi - lo > max) max = hi - lo;
  }
  return max;
}

/** Copies one object into the store as a writer would: whole, under a name the listing skips, then renamed. */
function land(from: string, to: string, key: string): void {
  const target = join(to, key);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.landing`;
  writeFileSync(tmp, readFileSync(join(from, key)));
  renameSync(tmp, target);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startFollow(args: readonly string[]): {
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr: () => string;
} {
  const child = spawn(process.execPath, [CLOUDTAP_BIN, "stitch", "--follow", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exit, stderr: () => err };
}

interface StateView {
  readonly blobsStitched: number;
  readonly replay: readonly unknown[];
  readonly flows: Readonly<Record<string, unknown>>;
}

function stateOf(path: string): StateView | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as StateView;
  } catch {
    return undefined;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Packets that are in the file more than once (same time stamp and bytes). */
async function duplicatePackets(file: string): Promise<number> {
  const d = await digestCapture(file);
  return d.packets - new Set(d.packetDigests).size;
}

describe("stitch --follow - a store that fills while the run goes on", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-follow-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const staging = join(dir, "staging");
  // Many small blobs: connections span several, so a kill always meets open ones.
  const sim = cloudtap(
    "simulate",
    "--out",
    staging,
    "--connections",
    "60",
    "--seed",
    "51",
    "--blob-size",
    "32KiB",
  );
  assert.equal(sim.status, 0, sim.stderr);
  const manifest = storeManifest(staging);
  const objects = storeObjects(staging);
  const groups = landingOrder(objects, 4, 7);
  const lateness = `${spreadNs(groups) / 1_000_000n + 1n}ms`;
  const reference = join(dir, "one-shot.pcapng");
  const ref = cloudtap("stitch", "--source", staging, "--pcapng", reference, "--workers", "1");
  assert.equal(ref.status, 0, ref.stderr);

  it("stitch --follow - blobs landing shuffled within the lateness window: complete; SIGTERM flushes within seconds", async () => {
    const source = join(dir, "source-a");
    mkdirSync(source, { recursive: true });
    const out = join(dir, "follow-a.pcapng");
    const state = join(dir, "state-a.json");
    const run = startFollow([
      "--source",
      source,
      "--pcapng",
      out,
      "--poll",
      "100ms",
      "--lateness",
      lateness,
      "--state",
      state,
    ]);
    try {
      for (const g of groups) {
        for (const key of g) land(staging, source, key);
        await sleep(40);
      }
      await until(
        "every blob handed to the stitcher",
        () => (stateOf(state)?.blobsStitched ?? 0) >= objects.length,
        120_000,
      );
      await sleep(1500);
      const asked = Date.now();
      run.child.kill("SIGTERM");
      const code = await run.exit;
      const tookMs = Date.now() - asked;
      assert.equal(code, 0, run.stderr());
      assert.ok(tookMs < 10_000, `stopped ${tookMs} ms after SIGTERM`);
      console.log(`follow: SIGTERM to exit ${tookMs} ms`);
    } finally {
      run.child.kill("SIGKILL");
    }
    assertTcpMatchesManifest(manifest, out, { atLeast: 10 });
    assert.equal(await duplicatePackets(out), await duplicatePackets(reference));
  });

  it("stitch --follow - SIGKILL mid-run, restarted with the same --state: nothing lost, nothing written twice", async () => {
    const source = join(dir, "source-b");
    mkdirSync(source, { recursive: true });
    const out = join(dir, "follow-b.pcapng");
    const state = join(dir, "state-b.json");
    const args = [
      "--source",
      source,
      "--pcapng",
      out,
      "--poll",
      "100ms",
      "--lateness",
      lateness,
      "--state",
      state,
    ];
    const half = Math.floor(groups.length / 2);
    const first = startFollow(args);
    try {
      for (const g of groups.slice(0, half)) {
        for (const key of g) land(staging, source, key);
        await sleep(40);
      }
      const landed = groups.slice(0, half).flat().length;
      // Killed once it has checkpointed part of what landed: some connections done, others open.
      await until("a checkpoint", () => (stateOf(state)?.blobsStitched ?? 0) >= landed / 2, 120_000);
      first.child.kill("SIGKILL");
      await first.exit;
    } finally {
      first.child.kill("SIGKILL");
    }
    const killedAt = stateOf(state)!;
    // The hard case: connections were open at the last checkpoint, so the restart reads blobs again.
    assert.ok(killedAt.replay.length > 0, "the kill met open connections");
    assert.ok(statSync(`${out}.partial`).size > 0, "the killed run had written to its file");
    const second = startFollow(args);
    try {
      for (const g of groups.slice(half)) {
        for (const key of g) land(staging, source, key);
        await sleep(40);
      }
      await until(
        "every blob handed to the restarted stitcher",
        () => (stateOf(state)?.blobsStitched ?? 0) >= objects.length,
        120_000,
      );
      await sleep(1500);
      second.child.kill("SIGTERM");
      assert.equal(await second.exit, 0, second.stderr());
    } finally {
      second.child.kill("SIGKILL");
    }
    console.log(
      `follow: killed at blob ${killedAt.blobsStitched} of ${objects.length}; ${killedAt.replay.length} blobs to read again, ${Object.keys(killedAt.flows).length} flow marks`,
    );
    assertTcpMatchesManifest(manifest, out, { atLeast: 10 });
    assert.equal(await duplicatePackets(out), await duplicatePackets(reference));
  });
});
