/** Runs a command to completion and reports its wall time and peak resident memory (VmHWM, polled). */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

export interface Measured {
  readonly seconds: number;
  readonly peakRssBytes: number;
  readonly stdout: string;
  readonly status: number;
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
