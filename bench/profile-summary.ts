/**
 * Self time of a V8 CPU profile (`.cpuprofile`, as `node --cpu-prof` or `startCpuProfileFromEnv` write it),
 * per function and per file, the heaviest first: `node --import tsx bench/profile-summary.ts <file...>
 * [--top N]`. Several files (the instances of one service) are added together. Self time is what a function
 * ran itself, not its callees; "(garbage collector)", "(program)" and "(idle)" are V8's own entries.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTimes {
  /** Microseconds sampled, idle excluded. */
  readonly busyUs: number;
  readonly idleUs: number;
  readonly byFunction: Map<string, number>;
  readonly byFile: Map<string, number>;
}

function fileOf(url: string): string {
  if (url === "") return "(native)";
  const path = url.startsWith("file://") ? new URL(url).pathname : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    // The package, not its file: pnpm's .pnpm/<pkg>@<v>/node_modules/<pkg>/...
    const rest = path.slice(nm + "/node_modules/".length).split("/");
    return `npm:${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (path.startsWith("node:")) return path;
  return relative(process.cwd(), path);
}

export function selfTimes(files: readonly string[]): SelfTimes {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(f, "utf8")) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < p.samples.length; i++) {
      // A sample's time is the delta to the next one (the last sample takes the previous delta).
      const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
      const n = nodes.get(p.samples[i]!)!;
      const { functionName, url, lineNumber } = n.callFrame;
      if (functionName === "(idle)") {
        idleUs += dt;
        continue;
      }
      busyUs += dt;
      const file = fileOf(url);
      const fn = `${functionName || "(anonymous)"} ${file}${url ? `:${lineNumber + 1}` : ""}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
      byFile.set(file, (byFile.get(file) ?? 0) + dt);
    }
  }
  return { busyUs, idleUs, byFunction, byFile };
}

function table(m: Map<string, number>, total: number, top: number): string {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(
      ([k, us]) =>
        `${(us / 1000).toFixed(0).padStart(7)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`,
    )
    .join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--top");
  const top = at >= 0 ? Number(args.splice(at, 2)[1]) : 30;
  const t = selfTimes(args);
  process.stdout.write(
    `busy ${(t.busyUs / 1000).toFixed(0)} ms, idle ${(t.idleUs / 1000).toFixed(0)} ms, ${args.length} profile(s)\n\n` +
      `by file:\n${table(t.byFile, t.busyUs, top)}\n\nby function:\n${table(t.byFunction, t.busyUs, top)}\n`,
  );
}
