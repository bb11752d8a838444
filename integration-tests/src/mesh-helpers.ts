/** What the mesh tests share: capinfos' verdict on a capture's time order, counters summed by service. */
import { execFileSync } from "node:child_process";

/** capinfos' packet count and strict time order of a capture file. */
export function capinfosOrder(file: string): { packets: number; strict: boolean } {
  const out = execFileSync("capinfos", ["-M", "-c", "-o", file], { encoding: "utf8" });
  return {
    packets: Number(/Number of packets:\s+(\d+)/.exec(out)?.[1] ?? "0"),
    strict: /Strict time order:\s+(\w+)/.exec(out)?.[1] === "True",
  };
}

export interface InstanceCounters {
  readonly service: string;
  readonly counters?: Record<string, number>;
}

/** The sum of a counter (every label set of it) over the instances of one service. */
export function sumCounter(instances: readonly InstanceCounters[], service: string, name: string): number {
  let n = 0;
  for (const i of instances.filter((x) => x.service === service))
    for (const [k, v] of Object.entries(i.counters ?? {})) if (k === name || k.startsWith(`${name}{`)) n += v;
  return n;
}
