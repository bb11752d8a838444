/**
 * Continuous mode on cloud stores: `cloudtap stitch --follow --state FILE` as its own process against s3rver
 * and azurite (real servers on 127.0.0.1), data and key logs in two buckets (containers) with their own
 * credentials. The simulator's blobs and key logs are written into the stores over time, shuffled within
 * groups that stay inside the lateness window (tappers writing in parallel). The output is judged against a
 * one-shot `cloudtap stitch` of the whole store once everything landed: the same TCP flows byte for byte
 * per direction (tshark follow), the same UDP datagrams and key-log lines, no packet twice. A run stopped by
 * SIGTERM and one killed with SIGKILL, each restarted with the same --state, neither lose nor repeat.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import {
  type Azurite,
  byEndpoints,
  CLOUDTAP_BIN,
  createAzuriteContainer,
  followStreams,
  type S3rver,
  startAzurite,
  startS3rver,
} from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { type CloudStores, cloudtapAsync, credentialArgs } from "./cloud-run.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

interface Landing {
  readonly key: string;
  readonly kind: "data" | "keys";
  readonly bytes: Buffer;
}

/** The blobs and key logs the simulator wrote into two directories, in start-time order. */
function simulated(dataDir: string, keysDir: string): Landing[] {
  const of = (dir: string, kind: "data" | "keys") =>
    walk(dir)
      .map((p) => ({ key: relative(dir, p), kind, bytes: readFileSync(p) }))
      .filter((o) => o.key.startsWith(`${kind}/`));
  return [...of(dataDir, "data"), ...of(keysDir, "keys")].sort((a, b) => {
    const x = startOf(a.key);
    const y = startOf(b.key);
    return x < y ? -1 : x > y ? 1 : a.key < b.key ? -1 : 1;
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

/**
 * Groups of at most `size` consecutive objects (by start time) that start within `windowNs` of the group's
 * first, each group shuffled: the landing order of tappers writing in parallel. The window bounds the
 * lateness the run needs (a group's spread), and so how long the last blobs wait in an idle store.
 */
function landingOrder<T extends { key: string }>(
  items: readonly T[],
  size: number,
  windowNs: bigint,
  seed: number,
): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  for (const item of items) {
    if (group.length > 0 && (group.length >= size || startOf(item.key) - startOf(group[0]!.key) > windowNs)) {
      groups.push(shuffled(group, seed + groups.length));
      group = [];
    }
    group.push(item);
  }
  if (group.length > 0) groups.push(shuffled(group, seed + groups.length));
  return groups;
}

/** The longest start-time spread of a group: the lateness window the run needs. */
function spreadNs(groups: readonly { key: string }[][]): bigint {
  let max = 0n;
  for (const g of groups) {
    const starts = g.map((o) => startOf(o.key));
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

interface FollowRun {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  readonly stderr: () => string;
}

function startFollow(args: readonly string[]): FollowRun {
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
}

function stateOf(path: string): StateView | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as StateView;
  } catch {
    return undefined;
  }
}

async function until(what: string, ok: () => boolean, timeoutMs: number, run?: FollowRun): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    assert.ok(
      Date.now() < deadline,
      `timed out waiting for ${what}${run ? `; stderr: ${run.stderr()}` : ""}`,
    );
    if (run?.child.exitCode !== null && run?.child.exitCode !== undefined)
      assert.fail(`the follow run exited (${run.child.exitCode}) waiting for ${what}: ${run.stderr()}`);
    await sleep(100);
  }
}

/** Packets that are in the file more than once (same time stamp and bytes). */
async function duplicatePackets(file: string): Promise<number> {
  const d = await digestCapture(file);
  return d.packets - new Set(d.packetDigests).size;
}

/**
 * The follow output against the one-shot reference, flow for flow: every TCP flow's bytes per direction,
 * the UDP datagrams, the key-log lines, as many packets and none twice. (Packets are not compared whole:
 * the IP identification of made UDP packets follows a per-process counter, which a restart begins again.)
 */
async function assertSameFlows(follow: string, reference: string): Promise<void> {
  const got = await digestCapture(follow);
  const want = await digestCapture(reference);
  assert.ok(want.packets > 100, `reference packets: ${want.packets}`);
  assert.ok(want.keyLogLines.length > 0, "the reference embedded keys");
  assert.deepEqual(byEndpoints(followStreams(follow)), byEndpoints(followStreams(reference)));
  assert.deepEqual(got.udpDigests, want.udpDigests, "the same UDP datagrams");
  assert.deepEqual(got.keyLogLines, want.keyLogLines, "the same key-log lines");
  assert.equal(got.packets, want.packets, "as many packets as the one-shot run");
  assert.equal(await duplicatePackets(follow), 0, "no packet twice");
}

interface CloudBackend {
  readonly name: string;
  /** Starts the server and makes the two buckets; returns the stores of a prefix (a test's own). */
  start(work: string): Promise<(prefix: string) => CloudStores>;
  stop(): Promise<void>;
}

function writeJson(work: string, name: string, value: unknown): string {
  const p = join(work, name);
  writeFileSync(p, JSON.stringify(value));
  return p;
}

function s3Backend(): CloudBackend {
  let s3: S3rver | undefined;
  return {
    name: "s3 (s3rver)",
    async start(work) {
      const data = { accessKeyId: "DATAWRITER0000000002", secretAccessKey: "data-secret-0002" };
      const keys = { accessKeyId: "KEYSWRITER0000000002", secretAccessKey: "keys-secret-0002" };
      s3 = await startS3rver({ buckets: ["tap-data", "tap-keys"], keyPairs: [data, keys] });
      const endpoint = s3.endpoint;
      const dataCredentials = writeJson(work, "data.json", {
        access_key_id: data.accessKeyId,
        secret_access_key: data.secretAccessKey,
      });
      const keysCredentials = writeJson(work, "keys.json", {
        access_key_id: keys.accessKeyId,
        secret_access_key: keys.secretAccessKey,
      });
      const url = (bucket: string, prefix: string) =>
        `s3://${bucket}/${prefix}?endpoint=${endpoint}&path_style=true&region=us-east-1`;
      return (prefix) => ({
        dataUrl: url("tap-data", prefix),
        dataCredentials,
        keysUrl: url("tap-keys", prefix),
        keysCredentials,
      });
    },
    stop: async () => s3?.cleanup(),
  };
}

function azureBackend(): CloudBackend {
  let azurite: Azurite | undefined;
  return {
    name: "azure (azurite)",
    async start(work) {
      const dataAccount = {
        name: "tapdata",
        key: Buffer.from("tapdata-account-key-0002-0123456789").toString("base64"),
      };
      const keysAccount = {
        name: "tapkeys",
        key: Buffer.from("tapkeys-account-key-0002-0123456789").toString("base64"),
      };
      const server = await startAzurite({ accounts: [dataAccount, keysAccount] });
      azurite = server;
      await createAzuriteContainer(server, dataAccount, "tap-data");
      await createAzuriteContainer(server, keysAccount, "tap-keys");
      const dataCredentials = writeJson(work, "data.json", { access_key: dataAccount.key });
      const keysCredentials = writeJson(work, "keys.json", { access_key: keysAccount.key });
      const url = (account: string, container: string, prefix: string) =>
        `azblob://${account}/${container}/${prefix}?endpoint=${server.endpoint(account)}`;
      return (prefix) => ({
        dataUrl: url("tapdata", "tap-data", prefix),
        dataCredentials,
        keysUrl: url("tapkeys", "tap-keys", prefix),
        keysCredentials,
      });
    },
    stop: async () => azurite?.cleanup(),
  };
}

for (const backend of [s3Backend(), azureBackend()]) {
  describe(`stitch --follow on a cloud store - ${backend.name}`, { timeout: 900_000 }, () => {
    let work: string;
    let storesOf: (prefix: string) => CloudStores;
    let objects: Landing[];
    let groups: Landing[][];
    let lateness: string;

    before(async () => {
      registerCloudStores();
      work = mkdtempSync(join(tmpdir(), "cloudtap-cloud-follow-"));
      storesOf = await backend.start(work);
      // Many small blobs: connections span several, so a stop always meets open ones.
      const sim = await cloudtapAsync([
        "simulate",
        "--out",
        join(work, "staging-data"),
        "--keys-out",
        join(work, "staging-keys"),
        "--connections",
        "30",
        "--seed",
        "61",
        "--blob-size",
        "32KiB",
      ]);
      assert.equal(sim.status, 0, sim.stderr);
      objects = simulated(join(work, "staging-data"), join(work, "staging-keys"));
      groups = landingOrder(objects, 4, 2_000_000_000n, 11);
      assert.ok(
        groups.some((g) => g.length > 1),
        "some objects land out of order",
      );
      lateness = `${spreadNs(groups) / 1_000_000n + 1n}ms`;
    });
    after(async () => {
      await backend.stop();
      rmSync(work, { recursive: true, force: true });
    });

    /** Writes the groups into the stores of `stores`, a pause between groups, as tappers would. */
    async function land(stores: CloudStores, which: readonly Landing[][]): Promise<void> {
      const data: ObjectStore = openStore(stores.dataUrl, { credentialsFile: stores.dataCredentials });
      const keys: ObjectStore = openStore(stores.keysUrl, { credentialsFile: stores.keysCredentials });
      for (const g of which) {
        for (const o of g) await (o.kind === "data" ? data : keys).write(o.key, o.bytes);
        await sleep(50);
      }
    }

    function followArgs(stores: CloudStores, out: string, state: string): string[] {
      return [
        "--source",
        stores.dataUrl,
        "--keys",
        stores.keysUrl,
        ...credentialArgs(stores),
        "--pcapng",
        out,
        "--poll",
        "200ms",
        "--lateness",
        lateness,
        "--state",
        state,
      ];
    }

    async function oneShot(stores: CloudStores, out: string): Promise<void> {
      const run = await cloudtapAsync([
        "stitch",
        "--source",
        stores.dataUrl,
        "--keys",
        stores.keysUrl,
        ...credentialArgs(stores),
        "--pcapng",
        out,
        "--workers",
        "1",
      ]);
      assert.equal(run.status, 0, run.stderr);
    }

    async function stop(run: FollowRun, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
      try {
        run.child.kill(signal);
        const code = await run.exit;
        if (signal === "SIGTERM") assert.equal(code, 0, run.stderr());
      } finally {
        run.child.kill("SIGKILL");
      }
    }

    test(`stitch --follow - ${backend.name}: blobs landing over time, SIGTERM: the output is the one-shot stitch's, flow for flow`, async () => {
      const stores = storesOf("fa");
      const out = join(work, "follow-a.pcapng");
      const state = join(work, "state-a.json");
      const run = startFollow(followArgs(stores, out, state));
      try {
        await land(stores, groups);
        await until(
          "every blob handed to the stitcher",
          () => (stateOf(state)?.blobsStitched ?? 0) >= objects.length,
          180_000,
          run,
        );
        await sleep(1500);
      } finally {
        await stop(run, "SIGTERM");
      }
      assert.equal(stateOf(state)!.blobsStitched, objects.length, "each blob and key log stitched once");
      const reference = join(work, "one-shot-a.pcapng");
      await oneShot(stores, reference);
      await assertSameFlows(out, reference);
    });

    test(`stitch --follow - ${backend.name}: stopped by SIGTERM, then SIGKILL mid-run, each restarted with the same --state: nothing lost, nothing written twice`, async () => {
      const stores = storesOf("fb");
      const out = join(work, "follow-b.pcapng");
      const state = join(work, "state-b.json");
      const args = followArgs(stores, out, state);
      const third = Math.floor(groups.length / 3);
      const landedBy = (n: number) => groups.slice(0, n).flat().length;

      const first = startFollow(args);
      try {
        await land(stores, groups.slice(0, third));
        await until(
          "the first third stitched",
          () => (stateOf(state)?.blobsStitched ?? 0) >= landedBy(third),
          180_000,
          first,
        );
      } finally {
        await stop(first, "SIGTERM");
      }
      const stopped = stateOf(state)!;

      const second = startFollow(args);
      try {
        await land(stores, groups.slice(third, 2 * third));
        // Killed once it has checkpointed part of what landed since the restart: connections still open.
        const from = stopped.blobsStitched;
        await until(
          "a checkpoint after the restart",
          () => (stateOf(state)?.blobsStitched ?? 0) >= from + (landedBy(2 * third) - from) / 2,
          180_000,
          second,
        );
      } finally {
        await stop(second, "SIGKILL");
      }
      const killed = stateOf(state)!;
      assert.ok(killed.replay.length > 0, "the kill met open connections");

      const third3 = startFollow(args);
      try {
        await land(stores, groups.slice(2 * third));
        await until(
          "every blob handed to the stitcher",
          () => (stateOf(state)?.blobsStitched ?? 0) >= objects.length,
          180_000,
          third3,
        );
        await sleep(1500);
      } finally {
        await stop(third3, "SIGTERM");
      }
      console.log(
        `cloud follow ${backend.name}: stopped at ${stopped.blobsStitched}, killed at ${killed.blobsStitched} (${killed.replay.length} blobs to read again), ${objects.length} objects`,
      );
      const reference = join(work, "one-shot-b.pcapng");
      await oneShot(stores, reference);
      await assertSameFlows(out, reference);
    });
  });
}
