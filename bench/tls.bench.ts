/**
 * Decryption, two ways:
 * 1. Per suite and record size, the TLS decoder's throughput of application data next to a raw node:crypto
 *    loop over the same records (packages/tls/src/decrypt.bench.ts).
 * 2. `cloudtap stitch --variant both` with keys over at least 200 MB of mixed simulated TLS traffic, first
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
const CONNECTIONS = Number(process.env["TLS_BENCH_CONNECTIONS"] ?? 700);

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

export async function benchTls(): Promise<BenchResult[]> {
  const results: BenchResult[] = (await benchTlsDecrypt()).map((r) => ({ ...r }));
  const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-tls-"));
  try {
    const sim = join(dir, "sim");
    const s = await cloudtap(
      "simulate",
      "--out",
      sim,
      "--connections",
      String(CONNECTIONS),
      "--seed",
      "99",
      "--json",
    );
    if (s.status !== 0) throw new Error("simulate failed");
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
    const keylog = join(dir, "keys.log");
    writeFileSync(keylog, keyText);
    const captureBytes = statSync(capture).size;
    // Ingest the capture (with its key log) into a fresh store: the stitcher's input.
    const store = join(dir, "ingested");
    const ing = await cloudtap("ingest", "--pcap", capture, "--keylog", keylog, "--out", store);
    if (ing.status !== 0) throw new Error("ingest failed");

    const ours = await stitchBoth(store, store, join(dir, "both.pcapng"));
    const tshark = await measure("tshark", [
      "-n",
      "-r",
      capture,
      "-o",
      `tls.keylog_file:${keylog}`,
      "-q",
      "-z",
      "io,stat,0",
    ]);
    if (tshark.status !== 0) throw new Error("tshark failed");
    const mb = captureBytes / 1e6;
    const oursRate = mb / ours.seconds;
    const theirRate = mb / tshark.seconds;
    const decrypted = ours.summary.tls.outcomes["decrypted"] ?? 0;
    results.push(
      {
        name: "stitch --variant both, keys (capture MB/s)",
        value: oursRate,
        unit: "MB/s",
        target: "at least 8x tshark",
        detail: `${mb.toFixed(0)} MB capture, ${CONNECTIONS} connections (${decrypted} decrypted), ${ours.seconds.toFixed(2)} s wall incl. node start, peak RSS ${(ours.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
      },
      {
        name: "tshark decrypting the same capture (io,stat)",
        value: theirRate,
        unit: "MB/s",
        detail: `${tshark.seconds.toFixed(2)} s, peak RSS ${(tshark.peakRssBytes / 2 ** 20).toFixed(0)} MiB; stitch/tshark = ${(oursRate / theirRate).toFixed(2)}x`,
      },
    );
    // Memory must not grow with the capture: the same run over about half of the blobs.
    const half = join(dir, "half");
    const h = await cloudtap(
      "simulate",
      "--out",
      half,
      "--connections",
      String(Math.floor(CONNECTIONS / 2)),
      "--seed",
      "99",
    );
    if (h.status !== 0) throw new Error("simulate (half) failed");
    const oursHalf = await stitchBoth(half, half, join(dir, "half.pcapng"));
    const cappedFull = await stitchBoth(store, store, join(dir, "both-capped.pcapng"), HEAP_CAP);
    const cappedHalf = await stitchBoth(half, half, join(dir, "half-capped.pcapng"), HEAP_CAP);
    results.push(
      {
        name: "stitch --variant both peak RSS, half / full traffic",
        value: oursHalf.peakRssBytes / 2 ** 20,
        unit: "MiB",
        detail: `full: ${(ours.peakRssBytes / 2 ** 20).toFixed(0)} MiB (${(ours.summary.payloadBytes / 2 ** 20).toFixed(0)} MiB payload); half: ${(oursHalf.summary.payloadBytes / 2 ** 20).toFixed(0)} MiB payload`,
      },
      {
        name: "same, heap capped at 128 MB: half / full",
        value: cappedHalf.peakRssBytes / 2 ** 20,
        unit: "MiB",
        detail: `full: ${(cappedFull.peakRssBytes / 2 ** 20).toFixed(0)} MiB in ${cappedFull.seconds.toFixed(2)} s; half in ${cappedHalf.seconds.toFixed(2)} s`,
      },
    );
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
