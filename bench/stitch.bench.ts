/**
 * Stitch throughput, one core: CTAP blobs in a directory store -> decode -> flow table -> TCP synthesis ->
 * pcapng file, as `cloudtap stitch` runs it. Shown next to tshark reading the stitched capture in the same
 * run (`tshark -r <capture> -q -z io,stat,0`), as a ratio over the same payload.
 * Then peak memory per idle connection with 100,000 concurrent open connections (in a child process with
 * --expose-gc so the heap can be measured after a collection).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createCaptureFileOutput } from "@cloudtap/egress/node";
import { listBlobs } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { runStitchJob, Stitcher } from "@cloudtap/stitch";
import type { BenchResult } from "./bench-result.js";
import { scratchDir } from "./scratch.js";
import { writeSyntheticStore } from "./synthetic-store.js";

const TOTAL = Number(process.env["STITCH_BENCH_BYTES"] ?? 256 * 1024 * 1024);

async function stitchOnce(
  dir: string,
  out: string,
): Promise<{ seconds: number; payload: number; packets: number }> {
  const store = openStore(dir);
  // The file output `cloudtap stitch --pcapng` uses: positioned writes that overlap synthesis.
  const output = createCaptureFileOutput({ path: out, format: "pcapng" });
  const stitcher = new Stitcher({ sink: output });
  const t = process.hrtime.bigint();
  const report = await runStitchJob({ blobs: listBlobs(store), stitcher, output, sink: output });
  await output.close();
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  return { seconds, payload: report.payloadBytes, packets: stitcher.stats.packets };
}

export async function benchStitch(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-stitch-"));
  try {
    const { payloadBytes, blobs } = await writeSyntheticStore({
      dir: join(dir, "store"),
      payloadBytes: TOTAL,
      connections: 2000,
    });
    const out = join(dir, "out.pcapng");
    await stitchOnce(join(dir, "store"), out); // warm-up (page cache, JIT)
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await stitchOnce(join(dir, "store"), out));
    runs.sort((a, b) => a.seconds - b.seconds);
    const mid = runs[2]!;
    const range = `${(payloadBytes / 1e6 / runs[4]!.seconds).toFixed(0)}-${(payloadBytes / 1e6 / runs[0]!.seconds).toFixed(0)} MB/s over 5 runs`;
    const ours = payloadBytes / 1e6 / mid.seconds;
    const t = process.hrtime.bigint();
    execFileSync("tshark", ["-n", "-r", out, "-q", "-z", "io,stat,0"], { stdio: "ignore" });
    const tsharkSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const theirs = payloadBytes / 1e6 / tsharkSeconds;
    const size = statSync(out).size;
    return [
      {
        name: "stitch blobs -> pcapng",
        value: ours,
        unit: "MB/s",
        target: "at least 500 MB/s of payload",
        detail: `${(payloadBytes / 2 ** 20).toFixed(0)} MiB payload in ${blobs} blobs, ${mid.packets} packets, ${(size / 2 ** 20).toFixed(0)} MiB pcapng, ${mid.seconds.toFixed(2)} s, median of 5 (${range})`,
      },
      {
        name: "tshark -q -z io,stat,0 on the same capture",
        value: theirs,
        unit: "MB/s",
        detail: `${tsharkSeconds.toFixed(2)} s; stitch/tshark = ${(ours / theirs).toFixed(2)}x`,
      },
      ...memory(),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function memory(): BenchResult[] {
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", "--import", "tsx", new URL("./stitch-memory.ts", import.meta.url).pathname],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`stitch-memory failed: ${r.stderr}`);
  const m = JSON.parse(r.stdout) as {
    connections: number;
    heapPerConnection: number;
    rssPerConnection: number;
  };
  return [
    {
      name: `memory per idle connection (${m.connections} open)`,
      value: m.heapPerConnection,
      unit: "B heap",
      target: "under 1024 B beyond buffered bytes",
      detail: `RSS growth ${m.rssPerConnection.toFixed(0)} B per connection`,
    },
  ];
}
