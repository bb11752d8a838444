/**
 * A CPU profile of a service process, for profiling runs only: when `<PREFIX>CPU_PROF_DIR` names a folder
 * (`STITCHER_CPU_PROF_DIR`, ...; `cloudtap up` passes a service's prefixed variables on), the process
 * samples itself with the V8 profiler from this call on and writes `<service>-<pid>.cpuprofile` (the format
 * of `node --cpu-prof`, read by Chrome DevTools and `bench/profile-summary.ts`) into it when it exits.
 * `node --cpu-prof` itself would need NODE_OPTIONS, which services do not inherit.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

/** Starts profiling when the variable names a folder; returns the file it will write, or undefined. */
export function startCpuProfileFromEnv(variable: string, service: string): string | undefined {
  const dir = process.env[variable];
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${service}-${process.pid}.cpuprofile`);
  const session = new Session();
  session.connect();
  // The main thread's session answers synchronously, so the profile can be taken in an exit handler.
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 500 });
  session.post("Profiler.start");
  process.once("exit", () => {
    session.post("Profiler.stop", (err, result) => {
      if (!err) writeFileSync(file, JSON.stringify(result.profile));
    });
  });
  return file;
}
