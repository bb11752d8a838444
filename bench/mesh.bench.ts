/**
 * The mesh end to end (`pnpm bench mesh`): blob bytes in a directory store -> fetcher -> JetStream ->
 * stitchers -> mirror-egress -> pcapng, with `cloudtap up --once` and 1, 2 and 4 stitchers (8 shards, one
 * fetcher), next to one-process `cloudtap stitch` on the same store in the same run.
 *
 * Timing: the mesh's window starts when the fetcher logs "fetch stage running" (every other service is up
 * by then) and ends at the last stitcher's "end of window" (every shard flushed and every batch acked by the
 * egress, which acks only after its file was fsynced and its journal written); process start-up and the
 * ordered stop are outside it, as the one-process figure is `cloudtap stitch --json`'s own `seconds`. CPU
 * per stage: utime + stime of each service process (from /proc, sampled every 200 ms) over the window, per
 * MiB of blob bytes; memory: each process's peak RSS (VmHWM) and its RSS at the end of the window.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { BenchResult } from "./bench-result.js";
import { processCpuSeconds } from "./measure.js";
import { measureLag } from "./mesh-lag.js";
import { scratchDir } from "./scratch.js";
import { writeSyntheticStore } from "./synthetic-store.js";

const TOTAL = Number(process.env["MESH_BENCH_BYTES"] ?? 96 * 1024 * 1024);
const CLI = new URL("../packages/cli/bin/cloudtap.mjs", import.meta.url).pathname;
/** Stitcher counts to run (`MESH_BENCH_STITCHERS=1,2`); default 1, 2 and 4. */
const STITCHER_COUNTS = (process.env["MESH_BENCH_STITCHERS"] ?? "1,2,4").split(",").map(Number);
/**
 * A profiling run (`MESH_BENCH_PROFILE=<folder>`): each service writes a CPU profile per process there
 * (`<folder>/<stitchers>/<service>-<pid>.cpuprofile`; summed by `bench/profile-summary.ts`). The profiler
 * costs CPU, so the figures of such a run are not the benchmark's.
 */
const PROFILE_DIR = process.env["MESH_BENCH_PROFILE"];
/**
 * Record time between response records (MESH_BENCH_RECORD_GAP_US, default 100: about 1.3 Gb/s of traffic,
 * so the stitchers' time order releases as the run goes, as it does on a real tap; 1 is the store of the
 * figures before 2026-12-02, whose whole record time fits in the time order's margin, so every frame
 * waited for the end of the window).
 */
const RECORD_GAP_NS = BigInt(process.env["MESH_BENCH_RECORD_GAP_US"] ?? "100") * 1000n;
/**
 * A timeline (`MESH_BENCH_TIMELINE=1`): each 200 ms sample's CPU per service (ms of CPU in that sample)
 * printed to stderr from the window's start, to see which stage waits for which.
 */
const TIMELINE = process.env["MESH_BENCH_TIMELINE"] === "1";

interface ProcSample {
  readonly cpuSeconds: number;
  readonly hwmBytes: number;
  readonly rssBytes: number;
}

function sample(pid: number): ProcSample | undefined {
  try {
    const cpuSeconds = processCpuSeconds(pid);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? "0") * 1024;
    return {
      cpuSeconds,
      hwmBytes: kb("VmHWM"),
      rssBytes: kb("VmRSS"),
    };
  } catch {
    return undefined;
  }
}

/** The ISO times of the log lines of a service log with this message. */
function logTimes(file: string, msg: string): number[] {
  if (!existsSync(file)) return [];
  const out: number[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    const t = /"time":"([^"]+)"/.exec(line)?.[1];
    if (t) out.push(Date.parse(t));
  }
  return out;
}

interface MeshRun {
  readonly seconds: number;
  readonly packets: number;
  /** Per service: CPU seconds over the window, peak and final RSS (summed / max over its instances). */
  readonly services: Record<
    string,
    { cpuSeconds: number; hwmBytes: number; rssBytes: number; instances: number }
  >;
}

async function meshOnce(dir: string, store: string, stitchers: number): Promise<MeshRun> {
  const stateDir = join(dir, `state-${stitchers}`);
  const out = join(dir, `mesh-${stitchers}.pcapng`);
  const up = spawn(
    process.execPath,
    [
      CLI,
      "up",
      "--once",
      "--no-keys",
      "--source",
      store,
      "--shards",
      "8",
      "--fetchers",
      "1",
      "--stitchers",
      String(stitchers),
      "--pcapng",
      out,
      "--state-dir",
      stateDir,
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        LOG_LEVEL: "info",
        ...(PROFILE_DIR
          ? Object.fromEntries(
              ["FETCHER_", "STITCHER_", "MIRROR_EGRESS_"].map((p) => [
                `${p}CPU_PROF_DIR`,
                join(PROFILE_DIR, String(stitchers)),
              ]),
            )
          : {}),
      },
    },
  );
  let stderr = "";
  up.stderr.on("data", (d) => {
    stderr += String(d);
  });
  const exited = new Promise<number | null>((resolve) => up.once("exit", (code) => resolve(code)));
  const first = new Map<number, ProcSample>();
  const last = new Map<number, ProcSample>();
  const serviceOf = new Map<number, string>();
  let windowOpen = false;
  const fetcherLog = join(stateDir, "logs", "fetcher-1.log");
  const previous = new Map<number, number>();
  let tick = 0;
  const timer = setInterval(() => {
    if (TIMELINE && windowOpen) {
      const row: string[] = [];
      for (const [pid, service] of serviceOf) {
        const s = sample(pid);
        if (!s) continue;
        const before = previous.get(pid) ?? s.cpuSeconds;
        previous.set(pid, s.cpuSeconds);
        row.push(`${service} ${Math.round((s.cpuSeconds - before) * 1000)}`);
      }
      process.stderr.write(`  t=${(tick++ * 0.2).toFixed(1)}s ${row.join("  ")}\n`);
    }
    if (!windowOpen) windowOpen = logTimes(fetcherLog, "fetch stage running").length > 0;
    const meshFile = join(stateDir, "mesh.json");
    if (!existsSync(meshFile)) return;
    let mesh: { instances: { service: string; pid?: number }[] };
    try {
      mesh = JSON.parse(readFileSync(meshFile, "utf8"));
    } catch {
      return;
    }
    for (const i of mesh.instances) {
      if (i.pid === undefined) continue;
      const s = sample(i.pid);
      if (!s) continue;
      serviceOf.set(i.pid, i.service);
      if (windowOpen && !first.has(i.pid)) first.set(i.pid, s);
      // Only while the work runs: the ordered stop starts once every stitcher logged its end of window.
      const ended = (readdirSync(join(stateDir, "logs")) as string[])
        .filter((f) => f.startsWith("stitcher-"))
        .every((f) => logTimes(join(stateDir, "logs", f), "end of window").length > 0);
      if (!ended || !last.has(i.pid)) last.set(i.pid, s);
    }
  }, 200);
  const code = await exited;
  clearInterval(timer);
  if (code !== 0) throw new Error(`cloudtap up --once exited ${code}: ${stderr.slice(-2000)}`);
  const start = Math.min(...logTimes(fetcherLog, "fetch stage running"));
  const ends = (readdirSync(join(stateDir, "logs")) as string[])
    .filter((f) => f.startsWith("stitcher-"))
    .flatMap((f) => logTimes(join(stateDir, "logs", f), "end of window"));
  const end = Math.max(...ends);
  const services: MeshRun["services"] = {};
  for (const [pid, s] of last) {
    const service = serviceOf.get(pid)!;
    const base = first.get(pid);
    services[service] ??= { cpuSeconds: 0, hwmBytes: 0, rssBytes: 0, instances: 0 };
    const e = services[service]!;
    e.cpuSeconds += s.cpuSeconds - (base?.cpuSeconds ?? s.cpuSeconds);
    e.hwmBytes = Math.max(e.hwmBytes, s.hwmBytes);
    e.rssBytes = Math.max(e.rssBytes, s.rssBytes);
    e.instances++;
  }
  const cap = spawnSync("capinfos", ["-M", "-c", out], { encoding: "utf8" });
  const packets = Number(/Number of packets:\s+(\d+)/.exec(cap.stdout)?.[1] ?? "0");
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(out, { force: true });
  return { seconds: (end - start) / 1000, packets, services };
}

export async function benchMesh(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-mesh-"));
  try {
    const store = join(dir, "store");
    const { blobs } = await writeSyntheticStore({
      dir: store,
      payloadBytes: TOTAL,
      connections: 500,
      recordGapNs: RECORD_GAP_NS,
    });
    const blobBytes = (readdirSync(store, { recursive: true }) as string[])
      .map(String)
      .filter((f) => f.endsWith(".ctap"))
      .reduce((n, f) => n + statSync(join(store, f)).size, 0);
    const mb = blobBytes / 1e6;
    const mib = blobBytes / 2 ** 20;

    const oneOut = join(dir, "one.pcapng");
    const one = spawnSync(
      process.execPath,
      [CLI, "stitch", "--source", store, "--pcapng", oneOut, "--json"],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    if (one.status !== 0) throw new Error(`cloudtap stitch failed: ${one.stderr}`);
    const oneReport = JSON.parse(one.stdout) as { seconds: number };
    const oneRate = mb / oneReport.seconds;
    const results: BenchResult[] = [
      {
        name: "one process: cloudtap stitch, blobs -> pcapng",
        value: oneRate,
        unit: "MB/s",
        detail: `${mib.toFixed(0)} MiB of blobs (${blobs}), ${oneReport.seconds.toFixed(2)} s (its own seconds)`,
      },
    ];
    for (const stitchers of STITCHER_COUNTS) {
      const r = await meshOnce(dir, store, stitchers);
      const rate = mb / r.seconds;
      const cpu = Object.entries(r.services)
        .filter(([s]) => s !== "nats-server" || r.services[s]!.cpuSeconds > 0)
        .map(([s, v]) => `${s} ${((v.cpuSeconds * 1000) / mib).toFixed(1)} ms/MiB`)
        .join(", ");
      const mem = Object.entries(r.services)
        .map(
          ([s, v]) =>
            `${s}${v.instances > 1 ? ` x${v.instances}` : ""} peak ${(v.hwmBytes / 2 ** 20).toFixed(0)} MiB (end ${(v.rssBytes / 2 ** 20).toFixed(0)})`,
        )
        .join(", ");
      results.push(
        {
          name: `mesh, ${stitchers} stitcher${stitchers > 1 ? "s" : ""}: blobs -> pcapng`,
          value: rate,
          unit: "MB/s",
          target: "at least 40% of one process",
          detail: `${r.seconds.toFixed(2)} s, ${((rate / oneRate) * 100).toFixed(0)}% of one process, ${r.packets} packets`,
        },
        {
          name: `mesh, ${stitchers} stitcher${stitchers > 1 ? "s" : ""}: CPU per MiB of blobs`,
          value: Object.values(r.services).reduce((n, v) => n + v.cpuSeconds, 0) * (1000 / mib),
          unit: "ms/MiB",
          detail: cpu,
        },
        {
          name: `mesh, ${stitchers} stitcher${stitchers > 1 ? "s" : ""}: memory per service`,
          value: Math.max(...Object.values(r.services).map((v) => v.hwmBytes)) / 2 ** 20,
          unit: "MiB peak (largest)",
          detail: mem,
        },
      );
    }
    // Lag in continuous mode, with a 1 s poll and a 1 s lateness (the default 2 min holds the newest
    // 2 min of record time in the stitchers until newer records come: a floor, not a measurement).
    if (process.env["MESH_BENCH_LAG"] === "0") return results;
    const lag = await measureLag(dir, { pollMs: 1000, latenessMs: 1000 });
    results.push({
      name: "mesh, continuous: lag blob landed -> packet out (p50)",
      value: lag.p50Ms,
      unit: "ms",
      detail: `p99 ${lag.p99Ms.toFixed(0)} ms over ${lag.packets} packets of ${lag.blobs} blobs of 250 ms, ${lag.lateFrames} late; FETCHER_POLL 1 s, STITCHER_LATENESS 1 s, PCAP-over-IP reader; stages p50/p99 ms: ${Object.entries(
        lag.stages,
      )
        .map(([stage, f]) => `${stage} ${f.p50Ms.toFixed(0)}/${f.p99Ms.toFixed(0)}`)
        .join(", ")}`,
      target: "p99 under 1 s plus the poll interval",
    });
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
