/**
 * `pnpm bench [name ...]`: runs the benchmarks (all, or those whose name contains an argument), prints a
 * table, and writes the results with date, machine and command to bench/results/<date>-<suite>.json.
 * docs/benchmarks.md records the figures quoted in issue notes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { benchEgress } from "../packages/egress/src/egress.bench.js";
import type { BenchResult } from "./bench-result.js";
import { benchCloudStores } from "./cloud-stores.bench.js";
import { benchMesh } from "./mesh.bench.js";
import { benchStitch } from "./stitch.bench.js";
import { benchTapFormat } from "./tap-format.bench.js";
import { benchTls } from "./tls.bench.js";
import { benchTransportFloor } from "./transport-floor.bench.js";

const suites: Record<string, () => Promise<BenchResult[]>> = {
  "tap-format": benchTapFormat,
  stitch: benchStitch,
  tls: benchTls,
  egress: benchEgress,
  mesh: benchMesh,
  "cloud-stores": benchCloudStores,
  "transport-floor": benchTransportFloor,
};

const wanted = process.argv.slice(2);
const chosen = Object.entries(suites).filter(
  ([n]) => wanted.length === 0 || wanted.some((w) => n.includes(w)),
);
const all: (BenchResult & { suite: string })[] = [];
for (const [suite, run] of chosen) {
  process.stderr.write(`running ${suite}...\n`);
  for (const r of await run()) {
    all.push({ suite, ...r });
    process.stdout.write(
      `${suite.padEnd(12)} ${r.name.padEnd(44)} ${r.value.toFixed(1).padStart(10)} ${r.unit}${r.detail ? `  (${r.detail})` : ""}\n`,
    );
  }
}
const machine = `${cpus().length} x ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
const date = new Date().toISOString();
mkdirSync(new URL("results/", import.meta.url), { recursive: true });
// One file per suite and day, so that running one suite does not erase another's figures.
for (const [suite] of chosen) {
  writeFileSync(
    new URL(`results/${date.slice(0, 10)}-${suite}.json`, import.meta.url),
    `${JSON.stringify({ date, machine, command: `pnpm bench ${suite}`, results: all.filter((r) => r.suite === suite) }, null, 2)}\n`,
  );
}
process.stdout.write(`machine: ${machine}\n`);
