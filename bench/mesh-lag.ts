/**
 * Lag in continuous mode (`pnpm bench mesh`, after the throughput runs): a tapper that writes in real time
 * (each blob holds 250 ms of records stamped with the wall clock, landed in the store when its 250 ms are
 * over) into `cloudtap up` (continuous, 1 fetcher, 2 stitchers, 4 shards, `FETCHER_POLL`, `STITCHER_LATENESS`
 * as given), and a PCAP-over-IP reader that records when each packet arrives. A packet's lag: its arrival
 * less the landing of the blob that held its record. p50 and p99 over every packet. Before the mesh stops,
 * `cloudtap status --json` gives each stage's share (the `mesh_stage_ms` histograms, see
 * packages/mesh/src/stage-latency.ts): p50 and p99 per stage, over every instance.
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { openStore } from "@cloudtap/object-store";
import {
  CloseInitiator,
  CloseReason,
  createCtapWriter,
  Direction,
  dataBlobKey,
  MemorySink,
  Transport,
} from "@cloudtap/tap-format";
import { type StageFigures, stageQuantiles } from "../packages/mesh/src/stage-latency.js";

const CLI = new URL("../packages/cli/bin/cloudtap.mjs", import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface LagResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly packets: number;
  readonly blobs: number;
  /** Per stage of the mesh (packages/mesh/src/stage-latency.ts). */
  readonly stages: Record<string, StageFigures>;
  /** Frames the egress wrote out of time order (`egress_merge_late_frames`): the time order's price. */
  readonly lateFrames: number;
}

/** Every instance's counters, by `cloudtap status --json`. */
async function statusSnapshots(stateDir: string): Promise<Record<string, number>[]> {
  const child = spawn(process.execPath, [CLI, "status", "--state-dir", stateDir, "--json"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  await new Promise((resolve) => child.once("exit", resolve));
  const parsed = JSON.parse(out) as { instances: { status?: { counters?: Record<string, number> } }[] };
  return parsed.instances.map((i) => i.status?.counters ?? {});
}

export async function measureLag(dir: string, o: { pollMs: number; latenessMs: number }): Promise<LagResult> {
  const storeDir = join(dir, "lag-store");
  mkdirSync(join(storeDir, "data"), { recursive: true });
  const store = openStore(storeDir);
  const port = await freePort();
  const stateDir = join(dir, "lag-state");
  const up = spawn(
    process.execPath,
    [
      CLI,
      "up",
      "--no-keys",
      "--source",
      storeDir,
      "--shards",
      "4",
      "--stitchers",
      "2",
      "--pcap-over-ip",
      `127.0.0.1:${port}`,
      "--state-dir",
      stateDir,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        FETCHER_POLL: `${o.pollMs}ms`,
        STITCHER_LATENESS: `${o.latenessMs}ms`,
      },
    },
  );
  let log = "";
  up.stdout.on("data", (d) => {
    log += String(d);
  });
  up.stderr.on("data", (d) => {
    log += String(d);
  });
  const exited = new Promise((resolve) => up.once("exit", resolve));
  try {
    for (let i = 0; !/continuous; Ctrl-C/.test(log); i++) {
      if (i > 1200) throw new Error(`cloudtap up did not start: ${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The reader: pcap stream, microsecond stamps; arrival time of each packet with its stamp.
    const arrivals: { tsMs: number; atMs: number }[] = [];
    const reader = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let header = false;
    reader.on("data", (d: Buffer) => {
      const at = Date.now();
      buf = Buffer.concat([buf, d]);
      if (!header && buf.length >= 24) {
        buf = buf.subarray(24);
        header = true;
      }
      while (header && buf.length >= 16) {
        const incl = buf.readUInt32LE(8);
        if (buf.length < 16 + incl) break;
        arrivals.push({ tsMs: buf.readUInt32LE(0) * 1000 + buf.readUInt32LE(4) / 1000, atMs: at });
        buf = buf.subarray(16 + incl);
      }
    });
    await new Promise((resolve, reject) => {
      reader.once("connect", resolve);
      reader.once("error", reject);
    });
    // The tapper: 40 blobs of 250 ms, 8 connections each (open, request, 4 x 4 KiB of response, close).
    const landed: { startMs: number; endMs: number; atMs: number }[] = [];
    const payload = new Uint8Array(4096).fill(0x61);
    let conn = 0;
    for (let b = 0; b < 40; b++) {
      const startMs = Date.now();
      const startNs = BigInt(startMs) * 1_000_000n;
      const sink = new MemorySink();
      const w = createCtapWriter(sink, { tapperId: "lag", sequence: BigInt(b), startNs });
      for (let c = 0; c < 8; c++, conn++) {
        const connId = (0xabc00000 + conn).toString(16).padStart(32, "0");
        const t = startNs + BigInt(c) * 25_000_000n;
        await w.write({
          type: "conn-open",
          connId,
          timestampNs: t,
          transport: Transport.Tcp,
          ipVersion: 4,
          client: { address: `10.9.${(conn >> 8) & 255}.${conn & 255}`, port: 40000 + (conn % 20000) },
          server: { address: "203.0.113.20", port: 80 },
          midstream: false,
          tcp: {
            clientMss: 1460,
            serverMss: 1460,
            clientWindowScale: 7,
            serverWindowScale: 7,
            sackPermitted: true,
          },
          attributes: {},
        });
        await w.write({
          type: "data",
          connId,
          direction: Direction.ClientToServer,
          offset: 0,
          timestampNs: t + 1_000_000n,
          spanNs: 0,
          payload: payload.subarray(0, 200),
        });
        for (let k = 0; k < 4; k++)
          await w.write({
            type: "data",
            connId,
            direction: Direction.ServerToClient,
            offset: k * 4096,
            timestampNs: t + BigInt(2 + k) * 1_000_000n,
            spanNs: 0,
            payload,
          });
        await w.write({
          type: "conn-close",
          connId,
          timestampNs: t + 10_000_000n,
          reason: CloseReason.Fin,
          initiator: CloseInitiator.Client,
          bytesClientToServer: 200,
          bytesServerToClient: 4 * 4096,
        });
      }
      const endMs = startMs + 250;
      await new Promise((r) => setTimeout(r, Math.max(0, endMs - Date.now())));
      await w.finish(BigInt(endMs) * 1_000_000n);
      await store.write(dataBlobKey("", "lag", startNs, BigInt(b)), sink.bytes());
      landed.push({ startMs, endMs, atMs: Date.now() });
    }
    // Wait until the packets stop coming (the last ones leave once the lateness has passed, or at idle).
    let seen = -1;
    for (let quiet = 0; quiet < 5; ) {
      await new Promise((r) => setTimeout(r, 1000 + o.latenessMs / 5));
      quiet = arrivals.length === seen ? quiet + 1 : 0;
      seen = arrivals.length;
    }
    reader.destroy();
    const snapshots = await statusSnapshots(stateDir);
    const stages = stageQuantiles(snapshots);
    const lateFrames = snapshots.reduce((n, s) => n + (s["egress_merge_late_frames"] ?? 0), 0);
    const lags: number[] = [];
    for (const a of arrivals) {
      const blob = landed.find((l) => a.tsMs >= l.startMs && a.tsMs < l.endMs + 50);
      if (blob) lags.push(a.atMs - blob.atMs);
    }
    lags.sort((x, y) => x - y);
    const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))] ?? Number.NaN;
    return { p50Ms: q(0.5), p99Ms: q(0.99), packets: lags.length, blobs: landed.length, stages, lateFrames };
  } finally {
    up.kill("SIGTERM");
    await exited;
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(storeDir, { recursive: true, force: true });
  }
}

// Run alone: `node --import tsx bench/mesh-lag.ts [pollMs] [latenessMs]` prints the result as JSON.
if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "mesh-lag-"));
  try {
    const pollMs = Number(process.argv[2] ?? 1000);
    const latenessMs = Number(process.argv[3] ?? 1000);
    console.log(JSON.stringify({ pollMs, latenessMs, ...(await measureLag(dir, { pollMs, latenessMs })) }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
