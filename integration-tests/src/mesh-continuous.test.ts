/**
 * The mesh in continuous mode, as a user runs it: `cloudtap up` (no --once) with two fetchers and two
 * stitchers polls an empty directory store while the simulator's blobs land in it over time, the key logs
 * after the first data blobs; `cloudtap status --json` shows the work split; `cloudtap replay` runs a past
 * window through the running mesh to a pcapng of its own; then SIGTERM stops everything in order. Judged:
 * the continuous pcapng carries every connection of the manifest, decrypted, as `cloudtap stitch` writes it
 * from the whole store (so the replay did not disturb it); the replay's pcapng is, flow for flow, what
 * `cloudtap stitch --since --until` writes for the same window.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  assertTcpMatchesManifest,
  byEndpoints,
  CLOUDTAP_BIN,
  followStreams,
  type ManifestTcpView,
} from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";
import { capinfosOrder } from "./mesh-helpers.js";

interface StatusJson {
  readonly instances: readonly {
    readonly instance: { readonly name: string; readonly service: string; readonly restarts: number };
    readonly status?: { readonly state: string; readonly counters: Record<string, number> };
    readonly error?: string;
  }[];
  readonly replays: readonly {
    readonly runId: string;
    readonly state: string;
    readonly shardsDone: number;
    readonly shardCount: number;
    readonly blobsDone: number;
  }[];
}

function status(stateDir: string): StatusJson {
  const r = cloudtap("status", "--state-dir", stateDir, "--json");
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as StatusJson;
}

/** Live counters only (a replay's series carry a `run` label). */
function liveSum(s: StatusJson, service: string, name: string): number {
  let n = 0;
  for (const i of s.instances.filter((x) => x.instance.service === service))
    for (const [k, v] of Object.entries(i.status?.counters ?? {}))
      if ((k === name || k.startsWith(`${name}{`)) && !k.includes("run=")) n += v;
  return n;
}

/** Files under a folder, relative, sorted (CTAP keys sort by time). */
function filesUnder(dir: string, suffix: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map(String)
    .filter((f) => f.endsWith(suffix))
    .sort();
}

/** Copies files into a store the way an uploader lands them: whole, by rename. */
function land(fromRoot: string, toRoot: string, files: readonly string[]): void {
  for (const f of files) {
    const to = join(toRoot, f);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(join(fromRoot, f), `${to}.landing`);
    renameSync(`${to}.landing`, to);
  }
}

/** The blob start time of a CTAP key (its leaf is `<20-digit ns>-<sequence>.ctap`). */
function startNsOf(key: string): bigint {
  const m = /(\d{20})-\d{10}\.ctap$/.exec(key);
  assert.ok(m, key);
  return BigInt(m[1]!);
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

describe("mesh - cloudtap up continuous, a replay beside it, SIGTERM", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-cont-"));
  const staging = join(dir, "staging");
  const stagingKeys = join(dir, "staging-keys");
  const store = join(dir, "store");
  const keys = join(dir, "keys");
  const stateDir = join(dir, "state");
  let manifest: ManifestTcpView;
  let up: ChildProcess | undefined;
  let upLog = "";
  after(async () => {
    // A failed run still stops the mesh in order (a SIGKILL of `up` would orphan its services).
    if (up && up.exitCode === null) {
      const gone = new Promise((resolve) => up!.once("exit", resolve));
      up.kill("SIGTERM");
      const timer = setTimeout(() => up?.kill("SIGKILL"), 120_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  before(() => {
    const sim = cloudtap(
      "simulate",
      "--out",
      staging,
      "--keys-out",
      stagingKeys,
      "--connections",
      "40",
      "--seed",
      "33",
      "--blob-size",
      "24KiB",
      "--json",
    );
    assert.equal(sim.status, 0, sim.stderr);
    manifest = storeManifest(staging);
    mkdirSync(join(store, "data"), { recursive: true });
    mkdirSync(join(keys, "keys"), { recursive: true });
  });

  it("mesh - blobs and keys land over time: every connection out, decrypted; a replay gets its window; SIGTERM flushes", async () => {
    const livePcapng = join(dir, "live.pcapng");
    const replayPcapng = join(dir, "replay.pcapng");
    const blobs = filesUnder(staging, ".ctap");
    const keyLogs = filesUnder(stagingKeys, ".keylog");
    assert.ok(blobs.length > 20, `${blobs.length} blobs`);
    assert.ok(keyLogs.length > 0);

    up = spawn(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "up",
        "--source",
        store,
        "--keys",
        keys,
        "--variant",
        "both",
        "--fetchers",
        "2",
        "--stitchers",
        "2",
        "--shards",
        "4",
        "--pcapng",
        livePcapng,
        "--state-dir",
        stateDir,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const collect = (d: Buffer) => {
      upLog += String(d);
    };
    up.stdout?.on("data", collect);
    up.stderr?.on("data", collect);
    const exited = new Promise<number | null>((resolve) => up!.once("exit", (code) => resolve(code)));
    await until("the mesh to run", 180_000, () => (/continuous; Ctrl-C/.test(upLog) ? true : undefined));

    // Round 1: the first half of the data, no keys yet (the TLS connections wait for theirs).
    const half = Math.floor(blobs.length / 2);
    land(staging, store, blobs.slice(0, half));
    await until("round 1 fetched", 180_000, () =>
      liveSum(status(stateDir), "fetcher", "blobs_done") >= half ? true : undefined,
    );
    // The key logs land after the data they decrypt, then the rest of the data.
    land(stagingKeys, keys, keyLogs);
    land(staging, store, blobs.slice(half));
    const running = await until("every blob stitched", 240_000, () => {
      const s = status(stateDir);
      const published = liveSum(s, "fetcher", "records_published");
      return liveSum(s, "fetcher", "blobs_done") === blobs.length &&
        liveSum(s, "stitcher", "stitcher_records") === published
        ? s
        : undefined;
    });

    // Two fetchers and two stitchers split the work (cloudtap status --json on the running mesh).
    const fetchers = running.instances.filter((i) => i.instance.service === "fetcher");
    const stitchers = running.instances.filter((i) => i.instance.service === "stitcher");
    assert.equal(fetchers.length, 2);
    assert.equal(stitchers.length, 2);
    for (const i of [...fetchers, ...stitchers])
      assert.equal(i.instance.restarts, 0, `${i.instance.name} restarted`);
    const split = [
      ...fetchers.map((f) => [f.instance.name, f.status?.counters["blobs_done"] ?? 0] as const),
      ...stitchers.map((s) => [s.instance.name, s.status?.counters["stitcher_records"] ?? 0] as const),
    ];
    for (const [name, n] of split) assert.ok(n > 0, `${name} took no work`);
    process.stdout.write(
      `# status --json split: ${split.map(([n, v]) => `${n} ${v}`).join(", ")} (fetchers: blobs, stitchers: records)\n`,
    );

    // A replay of a past window while continuous mode runs: from the 30% blob to the 70% blob.
    const sinceNs = startNsOf(blobs[Math.floor(blobs.length * 0.3)]!);
    const untilNs = startNsOf(blobs[Math.floor(blobs.length * 0.7)]!);
    const secs = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`;
    const replay = cloudtap(
      "replay",
      "--state-dir",
      stateDir,
      "--since",
      secs(sinceNs),
      "--until",
      secs(untilNs),
      "--pcapng",
      replayPcapng,
      "--json",
    );
    assert.equal(replay.status, 0, `${replay.stdout}\n${replay.stderr}`);
    const replayed = JSON.parse(replay.stdout) as { runId: string; state: string; shardsDone: number };
    assert.equal(replayed.state, "done");
    assert.equal(replayed.shardsDone, 4);
    const after = status(stateDir);
    const listed = after.replays.find((r) => r.runId === replayed.runId);
    assert.ok(listed, "cloudtap status lists the replay");
    assert.equal(listed.state, "done");
    // The replay had its own counters on both stitchers.
    for (const s of after.instances.filter((i) => i.instance.service === "stitcher")) {
      const own = Object.entries(s.status?.counters ?? {}).filter(
        ([k]) => k.startsWith("stitcher_records{") && k.includes(`run=${replayed.runId}`),
      );
      assert.ok(own.length > 0 && own[0]![1] > 0, `${s.instance.name} stitched none of the replay`);
    }
    process.stdout.write(`# replay ${replayed.runId}: blobs ${listed.blobsDone} of ${blobs.length}\n`);

    // SIGTERM: everything stops in order, the sinks flushed; exit 0. (The stitchers' decryption counters are
    // not read here: in continuous mode the newest connections stay open until newer traffic or the stop, so a
    // count taken before SIGTERM misses them. Decryption is judged on the output below instead.)
    up.kill("SIGTERM");
    assert.equal(await exited, 0, upLog);

    // Every connection, decrypted, as the one-process stitch of the whole store writes it.
    const tlsConnections = manifest.connections.filter((c) => (c as { tls?: unknown }).tls != null).length;
    assert.ok(tlsConnections > 10);
    assertTcpMatchesManifest(manifest, livePcapng, { atLeast: 15 });
    const fullFile = join(dir, "full.pcapng");
    const full = cloudtap(
      "stitch",
      "--source",
      store,
      "--keys",
      keys,
      "--pcapng",
      fullFile,
      "--variant",
      "both",
    );
    assert.equal(full.status, 0, full.stderr);
    // The reference decrypted every TLS connection, and the live output carries the same clear-text twins
    // (the stream comparison below covers both variants): so the mesh decrypted every one too.
    const referenceDecrypted = Number(/\bdecrypted (\d+)/.exec(full.stdout)?.[1] ?? -1);
    assert.equal(
      referenceDecrypted,
      tlsConnections,
      `every TLS connection decrypted by the reference\n${full.stdout}`,
    );
    const [live, reference] = await Promise.all([digestCapture(livePcapng), digestCapture(fullFile)]);
    assert.deepEqual(live.udpDigests, reference.udpDigests);
    assert.deepEqual(live.keyLogLines, reference.keyLogLines);
    assert.deepEqual(byEndpoints(followStreams(livePcapng)), byEndpoints(followStreams(fullFile)));

    // The replay: exactly the window's flows, as cloudtap stitch --since --until writes them.
    const windowFile = join(dir, "window.pcapng");
    const win = cloudtap(
      "stitch",
      "--source",
      store,
      "--keys",
      keys,
      "--since",
      secs(sinceNs),
      "--until",
      secs(untilNs),
      "--pcapng",
      windowFile,
      "--variant",
      "both",
    );
    assert.equal(win.status, 0, win.stderr);
    const [rep, windowRef] = await Promise.all([digestCapture(replayPcapng), digestCapture(windowFile)]);
    assert.ok(rep.packets > 0 && rep.packets < live.packets, `replay ${rep.packets}, live ${live.packets}`);
    assert.deepEqual(rep.udpDigests, windowRef.udpDigests);
    assert.deepEqual(rep.keyLogLines, windowRef.keyLogLines);
    assert.deepEqual(byEndpoints(followStreams(replayPcapng)), byEndpoints(followStreams(windowFile)));
    assert.equal(capinfosOrder(replayPcapng).strict, true, "the replay's pcapng is in strict time order");
    process.stdout.write(
      `# packets: live ${live.packets} (stitch ${reference.packets}), replay ${rep.packets} (stitch window ${windowRef.packets}); ${relative(dir, replayPcapng)}\n`,
    );
  });
});
