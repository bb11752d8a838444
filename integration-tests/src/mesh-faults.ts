/**
 * The mesh under faults, as the chaos and drain tests run it: `cloudtap up` in continuous mode (2 fetchers,
 * 2 stitchers, 4 shards, a pcapng, both variants) over a store that fills while the test runs: before each
 * fault one round of blobs lands, the key logs a third at the start and the rest after two rounds (so most
 * TLS connections get their keys after their data). Each fault signals one running instance that `up`
 * started (checked by its parent pid), by service or by instance name, after every instance answers its
 * status and a pause. At the end, once the mesh has settled (nothing in the work queue, nothing undelivered,
 * nothing unacked but what live stitchers hold, on three polls in a row), SIGTERM stops `up`, and the
 * pcapng is judged against the manifest and a one-process `cloudtap stitch` of the same store with its keys.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { assertTcpMatchesManifest, byEndpoints, CLOUDTAP_BIN, followStreams } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
export function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface MeshJson {
  readonly instances: readonly { service: string; name: string; pid?: number; restarts: number }[];
}

export interface StatusJson {
  readonly instances: readonly {
    readonly instance: { readonly name: string; readonly service: string; readonly restarts: number };
    readonly status?: {
      readonly state: string;
      readonly pid?: number;
      readonly counters: Record<string, number>;
    };
    readonly error?: string;
  }[];
}

/**
 * `cloudtap status --json`; undefined when an instance does not answer (status 1), unless `evenIfDown`: then
 * what the instances that answered said (a mesh whose services restart again and again is seldom all up).
 */
export function status(stateDir: string, options: { evenIfDown?: boolean } = {}): StatusJson | undefined {
  const r = cloudtap("status", "--state-dir", stateDir, "--json");
  if (r.status !== 0 && !(options.evenIfDown && r.status === 1)) return undefined;
  if (!r.stdout.trim()) return undefined;
  return JSON.parse(r.stdout) as StatusJson;
}

/**
 * Whether the mesh has nothing left to do: every instance answers, every stitcher runs its shards (one still
 * starting answers its status before its shards report, and its share of the backlog would read as 0), the
 * stitchers' backlog gauges cover all `shards`, nothing is in the work queue or undelivered, and nothing is
 * unacked but what live stitchers hold (a dead stitcher's messages stay unacked until their ack wait ends).
 */
export function meshSettled(s: StatusJson | undefined, shards: number): boolean {
  if (s === undefined || !allAnswer(s)) return false;
  const stitchers = s.instances.filter((i) => i.instance.service === "stitcher");
  if (stitchers.some((i) => i.status?.state === "starting")) return false;
  const reported = new Set<string>();
  for (const i of stitchers)
    for (const k of Object.keys(i.status?.counters ?? {})) {
      const m = /^stitcher_backlog_messages\{.*shard="?(\d+)/.exec(k);
      if (m) reported.add(m[1]!);
    }
  return (
    reported.size === shards &&
    sum(s, "fetcher", "queue_pending") === 0 &&
    sum(s, "stitcher", "stitcher_backlog_messages") === 0 &&
    sum(s, "stitcher", "stitcher_unacked_messages") === sum(s, "stitcher", "stitcher_held_messages")
  );
}

/** Every instance but nats-server (which has no status service) answered its status. */
export function allAnswer(s: StatusJson | undefined): boolean {
  return s?.instances.every((i) => i.instance.service === "nats-server" || i.status !== undefined) ?? false;
}

/** A counter summed over the instances of a service (every label set; live run only). */
export function sum(s: StatusJson, service: string, name: string): number {
  let n = 0;
  for (const i of s.instances.filter((x) => x.instance.service === service))
    for (const [k, v] of Object.entries(i.status?.counters ?? {}))
      if ((k === name || k.startsWith(`${name}{`)) && !k.includes("run=")) n += v;
  return n;
}

export function filesUnder(dir: string, suffix: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map(String)
    .filter((f) => f.endsWith(suffix))
    .sort();
}

export function land(fromRoot: string, toRoot: string, files: readonly string[]): void {
  for (const f of files) {
    const to = join(toRoot, f);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(join(fromRoot, f), `${to}.landing`);
    renameSync(`${to}.landing`, to);
  }
}

/** A process's environment from /proc (undefined once it has exited). */
export function environOf(pid: number): Record<string, string> | undefined {
  try {
    const out: Record<string, string> = {};
    for (const entry of readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** The parent pid of a process (from /proc), to signal only the processes `up` started. */
export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2000);
  }
}

/**
 * One more stitcher, outside `up` (an operator scaling out): stitcher-1's environment (addresses, TLS,
 * settings) with its own name and ports; it takes its share of the shards by lease.
 */
async function startExtraStitcher(stateDir: string, upPid: number, n: number): Promise<ChildProcess> {
  const mesh = JSON.parse(readFileSync(join(stateDir, "mesh.json"), "utf8")) as MeshJson;
  const first = mesh.instances.find((i) => i.name === "stitcher-1" && i.pid !== undefined);
  assert.ok(first && parentOf(first.pid!) === upPid, "stitcher-1 runs under up");
  const env = environOf(first.pid!);
  assert.ok(env, "stitcher-1's environment");
  const argv = readFileSync(`/proc/${first.pid}/cmdline`, "latin1")
    .split("\0")
    .filter((a) => a !== "");
  delete env["CLOUDTAP_EXIT_REASON_FILE"]; // stitcher-1's, read by up
  const port = () => String(20_000 + Math.floor(Math.random() * 20_000));
  const child = spawn(argv[0]!, argv.slice(1), {
    env: {
      ...env,
      STITCHER_INSTANCE: `stitcher-extra-${n}`,
      STITCHER_STATUS_LISTEN: `127.0.0.1:${port()}`,
      STITCHER_METRICS_LISTEN: `127.0.0.1:${port()}`,
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  let acquired = 0;
  const collect = (d: Buffer) => {
    const text = String(d);
    acquired += text.split('"msg":"shard acquired"').length - 1;
    err = (err + text).slice(-4000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  child.once("exit", (code) => {
    if (code !== 0 && code !== null) process.stdout.write(`# extra stitcher exited ${code}: ${err}\n`);
  });
  // It has its share once it holds a lease (the others hand theirs over after draining them).
  await until("the extra stitcher to acquire a shard", 120_000, () => (acquired > 0 ? true : undefined));
  process.stdout.write(`# stitcher-extra-${n} holds ${acquired} shard(s)\n`);
  return child;
}

async function stopExtraStitcher(child: ChildProcess): Promise<void> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  assert.equal(await exited, 0, "the extra stitcher stopped cleanly");
}

export interface FaultRun {
  /** Services or instance names, in order; each entry signals one running instance of it. */
  readonly plan: readonly string[];
  readonly signal: NodeJS.Signals;
  /** Pause before each fault, after every instance answers (ms). */
  readonly pauseMs: (k: number) => number;
  /** Which of several matching instances (0..1). */
  readonly pick: (k: number) => number;
  /** Wait until the signalled instance is back (restarted and answering) before the next fault. */
  readonly waitBack?: boolean;
  readonly connections?: number;
  readonly simulatorSeed?: number;
  /** Keep the folder (its logs) for a look after the run. */
  readonly keep?: boolean;
  /**
   * `cloudtap up --elastic-shards`: the stitchers share the shards by lease. A plan entry "+stitcher" then
   * starts one more stitcher process (the environment of stitcher-1, another name and ports), outside `up`;
   * "-stitcher" stops the last one started so with SIGTERM (it gives its shards back).
   */
  readonly elastic?: boolean;
}

export interface FaultResult {
  readonly signalled: readonly string[];
  readonly restarts: Readonly<Record<string, number>>;
  readonly packets: number;
  readonly referencePackets: number;
  /** Packets of the same time and bytes as another packet of the file. */
  readonly duplicates: number;
  /** Copies the egress dropped (summed over the egress processes seen). */
  readonly droppedCopies: number;
  readonly egressProcesses: number;
}

/** Runs the mesh through the faults and judges its pcapng (complete, decrypted); returns the figures. */
export async function runMeshUnderFaults(run: FaultRun): Promise<FaultResult> {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-faults-"));
  const staging = join(dir, "staging");
  const stagingKeys = join(dir, "staging-keys");
  const store = join(dir, "store");
  const keys = join(dir, "keys");
  const stateDir = join(dir, "state");
  const livePcapng = join(dir, "live.pcapng");
  let upLog = "";
  const sim = cloudtap(
    "simulate",
    "--out",
    staging,
    "--keys-out",
    stagingKeys,
    "--connections",
    String(run.connections ?? 48),
    "--seed",
    String(run.simulatorSeed ?? 41),
    "--blob-size",
    "24KiB",
    "--json",
  );
  assert.equal(sim.status, 0, sim.stderr);
  const manifest = storeManifest(staging);
  mkdirSync(join(store, "data"), { recursive: true });
  mkdirSync(join(keys, "keys"), { recursive: true });
  const blobs = filesUnder(staging, ".ctap");
  const keyLogs = filesUnder(stagingKeys, ".keylog");
  assert.ok(blobs.length > 20, `${blobs.length} blobs`);

  const up = spawn(
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
      ...(run.elastic ? ["--elastic-shards"] : []),
      "--pcapng",
      livePcapng,
      "--state-dir",
      stateDir,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        // Short ack waits, so what a killed instance held comes back within the test's time.
        STITCHER_ACK_WAIT: "4s",
        // The simulator's record time spans about 30 s: with the default 2-min lateness the stitchers' time
        // order would release nothing before the stop, and the faults would meet an idle egress. 10 s keeps
        // frames flowing and still covers the disorder a killed fetcher causes (its blob comes back after
        // FETCHER_ACK_WAIT, behind blobs of later record time).
        STITCHER_LATENESS: "10s",
        FETCHER_ACK_WAIT: "6s",
        FETCHER_POLL: "2s",
      },
    },
  );
  const collect = (d: Buffer) => {
    upLog += String(d);
  };
  up.stdout?.on("data", collect);
  up.stderr?.on("data", collect);
  const upPid = up.pid!;
  const exited = new Promise<number | null>((resolve) => up.once("exit", (code) => resolve(code)));
  try {
    await until("the mesh to run", 240_000, () => (/continuous; Ctrl-C/.test(upLog) ? true : undefined));

    /** Frames each egress process wrote and copies it dropped, as last seen (counters restart with it). */
    const egressSeen = new Map<number, { frames: number; copies: number }>();
    const watchEgress = (s: StatusJson | undefined) => {
      const e = s?.instances.find((i) => i.instance.service === "mirror-egress" && i.status);
      const pid = e?.status?.pid;
      if (!e?.status || pid === undefined) return;
      egressSeen.set(pid, {
        frames: e.status.counters["egress_frames"] ?? 0,
        copies: e.status.counters["egress_duplicate_frames"] ?? 0,
      });
    };

    const rounds = run.plan.length + 1;
    const perRound = Math.ceil(blobs.length / rounds);
    land(stagingKeys, keys, keyLogs.slice(0, Math.ceil(keyLogs.length / 3)));
    const signalled: string[] = [];
    const extra: ChildProcess[] = [];
    for (let k = 0; k < run.plan.length; k++) {
      land(staging, store, blobs.slice(k * perRound, (k + 1) * perRound));
      if (k === 2) land(stagingKeys, keys, keyLogs.slice(Math.ceil(keyLogs.length / 3)));
      const s = await until("every instance to answer", 240_000, () => {
        const st = status(stateDir);
        watchEgress(st);
        return allAnswer(st) ? st : undefined;
      });
      await sleep(run.pauseMs(k));
      const entry = run.plan[k]!;
      if (entry === "+stitcher" || entry === "-stitcher") {
        signalled.push(`${entry}@${new Date().toISOString().slice(11, 19)}`);
        if (entry === "+stitcher") extra.push(await startExtraStitcher(stateDir, upPid, extra.length + 1));
        else await stopExtraStitcher(extra.pop()!);
        continue;
      }
      const mesh = JSON.parse(readFileSync(join(stateDir, "mesh.json"), "utf8")) as MeshJson;
      const candidates = mesh.instances.filter(
        (i) => (i.service === entry || i.name === entry) && i.pid !== undefined && parentOf(i.pid) === upPid,
      );
      assert.ok(candidates.length > 0, `no running ${entry} to signal`);
      const victim = candidates[Math.floor(run.pick(k) * candidates.length)]!;
      const restartsBefore = s.instances.find((i) => i.instance.name === victim.name)?.instance.restarts ?? 0;
      process.kill(victim.pid!, run.signal);
      signalled.push(`${victim.name}@${new Date().toISOString().slice(11, 19)}`);
      if (run.waitBack)
        await until(`${victim.name} to be back`, 240_000, () => {
          const st = status(stateDir);
          const i = st?.instances.find((x) => x.instance.name === victim.name);
          return i && i.instance.restarts > restartsBefore && (i.status || victim.service === "nats-server")
            ? true
            : undefined;
        });
    }
    land(staging, store, blobs.slice(run.plan.length * perRound));
    await sleep(5000); // at least two listing polls
    process.stdout.write(`# signalled (${run.signal}): ${signalled.join(", ")}\n`);

    let stable = 0;
    const settled = await until("the mesh to settle after the faults", 600_000, () => {
      const s = status(stateDir);
      watchEgress(s);
      const ok = meshSettled(s, 4);
      stable = ok ? stable + 1 : 0;
      return stable >= 3 ? s : undefined;
    });
    const restarts = Object.fromEntries(settled.instances.map((i) => [i.instance.name, i.instance.restarts]));
    process.stdout.write(`# restarts: ${JSON.stringify(restarts)}\n`);

    up.kill("SIGTERM");
    assert.equal(await exited, 0, upLog.slice(-4000));
    assert.ok(existsSync(livePcapng), "the pcapng was closed under its name");

    // Complete: every TCP connection's bytes as the manifest has them, and every flow of both variants
    // (the cleartext ones exist only decrypted) as one-process cloudtap stitch writes them.
    assertTcpMatchesManifest(manifest, livePcapng, { atLeast: 20 });
    const oneFile = join(dir, "one.pcapng");
    const one = cloudtap(
      "stitch",
      "--source",
      store,
      "--keys",
      keys,
      "--pcapng",
      oneFile,
      "--variant",
      "both",
    );
    assert.equal(one.status, 0, one.stderr);
    const meshFlows = byEndpoints(followStreams(livePcapng));
    const oneFlows = byEndpoints(followStreams(oneFile));
    assert.deepEqual([...meshFlows.keys()].sort(), [...oneFlows.keys()].sort());
    for (const [flow, want] of oneFlows) assert.deepEqual(meshFlows.get(flow), want, flow);
    const [got, reference] = await Promise.all([digestCapture(livePcapng), digestCapture(oneFile)]);
    const count = new Map<string, number>();
    for (const d of got.udpDigests) count.set(d, (count.get(d) ?? 0) + 1);
    for (const d of reference.udpDigests) {
      const n = count.get(d) ?? 0;
      assert.ok(n > 0, "a datagram of the one-process run is missing");
      count.set(d, n - 1);
    }
    for (const line of reference.keyLogLines) assert.ok(got.keyLogLines.includes(line), "a key is missing");
    const result: FaultResult = {
      signalled,
      restarts,
      packets: got.packets,
      referencePackets: reference.packets,
      duplicates: got.packets - new Set(got.packetDigests).size,
      droppedCopies: [...egressSeen.values()].reduce((n, e) => n + e.copies, 0),
      egressProcesses: egressSeen.size,
    };
    process.stdout.write(
      `# packets ${result.packets} (one process ${result.referencePackets}); duplicates ${result.duplicates}; the egress dropped ${result.droppedCopies} copies (${result.egressProcesses} egress processes seen); key lines ${got.keyLogLines.length}\n`,
    );
    return result;
  } finally {
    if (up.exitCode === null) {
      up.kill("SIGTERM");
      const timer = setTimeout(() => up.kill("SIGKILL"), 120_000);
      await exited;
      clearTimeout(timer);
    }
    if (run.keep) process.stdout.write(`# kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
