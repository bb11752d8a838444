/**
 * Decryption, two ways:
 * 1. Per suite and record size, the TLS decoder's throughput of application data next to a raw node:crypto
 *    loop over the same records (packages/tls/src/decrypt.bench.ts).
 * 2. `cloudtap stitch --variant both` with keys over captures of 295 and 531 MB of mixed simulated TLS traffic, first
 *    turned into a capture and ingested (`cloudtap ingest`), next to tshark dissecting and decrypting the same
 *    capture with the same key log (`tshark -r cap -o tls.keylog_file:keys -q -z io,stat,0`) in the same run;
 *    peak memory of both, and of the stitcher on half the traffic (it must not grow with the capture).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchTlsDecrypt } from "../packages/tls/src/decrypt.bench.js";
import type { BenchResult } from "./bench-result.js";
import { measure } from "./measure.js";
import { scratchDir } from "./scratch.js";

/** The command as users run it: the bundle (built first when a source is newer). */
const CLI = new URL("../packages/cli/bin/cloudtap.mjs", import.meta.url).pathname;
/** Capture sizes, as simulated connections: 700 make a 295 MB capture, 1400 a 531 MB one. */
const SIZES = (process.env["TLS_BENCH_CONNECTIONS"] ?? "700,1400").split(",").map(Number);

function cloudtap(...args: string[]) {
  return measure(process.execPath, [CLI, ...args]);
}

/** V8 sizes its heap to the allocation rate; a fixed cap shows what the stitcher really needs. */
const HEAP_CAP = ["--max-old-space-size=128"];

async function stitchBoth(store: string, keys: string, out: string, nodeFlags: readonly string[] = []) {
  const r = await measure(process.execPath, [
    ...nodeFlags,
    CLI,
    "stitch",
    "--source",
    store,
    "--keys",
    keys,
    "--variant",
    "both",
    "--pcapng",
    out,
    "--json",
  ]);
  if (r.status !== 0) throw new Error(`cloudtap stitch failed (${r.status})`);
  const summary = JSON.parse(r.stdout) as {
    payloadBytes: number;
    seconds: number;
    tls: { outcomes: Record<string, number> };
  };
  return { ...r, summary };
}

/** Runs per side at each size, interleaved (ours, tshark, ours, tshark, ...), so drift hits both alike. */
const PAIRS = Number(process.env["TLS_BENCH_PAIRS"] ?? 3);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Simulated traffic of `connections` connections (the same seed at every size) into a store at `out`. */
async function simulate(out: string, connections: number): Promise<void> {
  const s = await cloudtap("simulate", "--out", out, "--connections", String(connections), "--seed", "99");
  if (s.status !== 0) throw new Error(`simulate (${connections} connections) failed`);
}

/** A capture of `connections` simulated connections with its key log, and its ingested store. */
async function prepare(dir: string, connections: number) {
  const sim = join(dir, "sim");
  await simulate(sim, connections);
  // The "capture": the simulated traffic as packets, with the key log beside it.
  const capture = join(dir, "capture.pcap");
  const c = await cloudtap("stitch", "--source", sim, "--pcap", capture, "--json");
  if (c.status !== 0) throw new Error("stitch to capture failed");
  let keyText = "";
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".keylog")) keyText += readFileSync(p, "utf8");
    }
  };
  walk(join(sim, "keys"));
  rmSync(sim, { recursive: true, force: true });
  const keylog = join(dir, "keys.log");
  writeFileSync(keylog, keyText);
  // Ingest the capture (with its key log) into a fresh store: the stitcher's input.
  const store = join(dir, "ingested");
  const ing = await cloudtap("ingest", "--pcap", capture, "--keylog", keylog, "--out", store);
  if (ing.status !== 0) throw new Error("ingest failed");
  return { capture, keylog, store, captureBytes: statSync(capture).size };
}

/** Ours next to tshark on one capture: medians of interleaved runs and the median of the per-pair ratios. */
async function compare(dir: string, connections: number): Promise<BenchResult[]> {
  const { capture, keylog, store, captureBytes } = await prepare(dir, connections);
  const mb = captureBytes / 1e6;
  const ours: Awaited<ReturnType<typeof stitchBoth>>[] = [];
  const theirs: Awaited<ReturnType<typeof measure>>[] = [];
  for (let i = 0; i < PAIRS; i++) {
    ours.push(await stitchBoth(store, store, join(dir, "both.pcapng")));
    rmSync(join(dir, "both.pcapng"), { force: true });
    const t = await measure("tshark", [
      "-n",
      "-r",
      capture,
      "-o",
      `tls.keylog_file:${keylog}`,
      "-q",
      "-z",
      "io,stat,0",
    ]);
    if (t.status !== 0) throw new Error("tshark failed");
    theirs.push(t);
  }
  const ratios = ours.map((o, i) => theirs[i]!.seconds / o.seconds);
  const oursS = median(ours.map((o) => o.seconds));
  const theirS = median(theirs.map((t) => t.seconds));
  const decrypted = ours[0]!.summary.tls.outcomes["decrypted"] ?? 0;
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
  return [
    {
      name: `stitch --variant both, keys, ${mb.toFixed(0)} MB capture (MB/s)`,
      value: mb / oursS,
      unit: "MB/s",
      target: "at least 8x tshark",
      detail: `${connections} connections (${decrypted} decrypted); median of ${PAIRS} runs ${oursS.toFixed(2)} s (${range(ours.map((o) => o.seconds))} s) wall incl. node start; peak RSS ${(Math.max(...ours.map((o) => o.peakRssBytes)) / 2 ** 20).toFixed(0)} MiB`,
    },
    {
      name: `tshark decrypting the same ${mb.toFixed(0)} MB capture (MB/s)`,
      value: mb / theirS,
      unit: "MB/s",
      detail: `median ${theirS.toFixed(2)} s (${range(theirs.map((t) => t.seconds))} s), peak RSS ${(Math.max(...theirs.map((t) => t.peakRssBytes)) / 2 ** 20).toFixed(0)} MiB`,
    },
    {
      name: `ratio stitch / tshark, ${mb.toFixed(0)} MB capture`,
      value: median(ratios),
      unit: "x",
      target: "at least 8",
      detail: `per interleaved pair: ${ratios.map((r) => r.toFixed(2)).join(", ")}`,
    },
  ];
}

export async function benchTls(): Promise<BenchResult[]> {
  const results: BenchResult[] = (await benchTlsDecrypt()).map((r) => ({ ...r }));
  for (const connections of SIZES) {
    const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-tls-"));
    try {
      results.push(...(await compare(dir, connections)));
      if (connections === SIZES[0]) results.push(...(await memory(dir, connections)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return results;
}

/** Memory must not grow with the capture: the same run over about half of the connections, and heap-capped. */
async function memory(dir: string, connections: number): Promise<BenchResult[]> {
  const store = join(dir, "ingested");
  const full = await stitchBoth(store, store, join(dir, "m.pcapng"));
  const half = join(dir, "half");
  await simulate(half, Math.floor(connections / 2));
  const oursHalf = await stitchBoth(half, half, join(dir, "half.pcapng"));
  const cappedFull = await stitchBoth(store, store, join(dir, "both-capped.pcapng"), HEAP_CAP);
  const cappedHalf = await stitchBoth(half, half, join(dir, "half-capped.pcapng"), HEAP_CAP);
  return [
    {
      name: "stitch --variant both peak RSS, half / full traffic",
      value: oursHalf.peakRssBytes / 2 ** 20,
      unit: "MiB",
      detail: `full: ${(full.peakRssBytes / 2 ** 20).toFixed(0)} MiB (${(full.summary.payloadBytes / 2 ** 20).toFixed(0)} MiB payload); half: ${(oursHalf.summary.payloadBytes / 2 ** 20).toFixed(0)} MiB payload`,
    },
    {
      name: "same, heap capped at 128 MB: half / full",
      value: cappedHalf.peakRssBytes / 2 ** 20,
      unit: "MiB",
      detail: `full: ${(cappedFull.peakRssBytes / 2 ** 20).toFixed(0)} MiB in ${cappedFull.seconds.toFixed(2)} s; half in ${cappedHalf.seconds.toFixed(2)} s`,
    },
  ];
}
