/** Runs a command to completion and reports its wall time and peak resident memory (VmHWM, polled). */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Measured {
  readonly seconds: number;
  readonly peakRssBytes: number;
  readonly stdout: string;
  readonly status: number;
}

/** Clock ticks per second of /proc's CPU times (CLK_TCK on Linux). */
const TICK = 100;

/** CPU seconds (user + system, every thread) another process has used, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK;
}

function hwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function measure(command: string, args: readonly string[]): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] });
    let stdout = "";
    let peak = 0;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    const timer = setInterval(() => {
      if (child.pid) peak = Math.max(peak, hwm(child.pid));
    }, 20);
    child.on("error", (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on("exit", (code) => {
      clearInterval(timer);
      resolve({
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        peakRssBytes: peak,
        stdout,
        status: code ?? -1,
      });
    });
  });
}
