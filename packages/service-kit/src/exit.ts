/**
 * How a service's process ends, for whoever supervises it (`cloudtap up`, a container runtime):
 *
 * - exit codes: 0 stopped, 1 failed (worth a restart), 2 bad configuration, 3 a store that cannot be opened
 *   (a missing directory, refused credentials, a missing bucket); 2 and 3 do not heal by restarting;
 * - an exit reason: one line of text written, when `CLOUDTAP_EXIT_REASON_FILE` names a file, just before a
 *   failing exit (as a Kubernetes termination message), so the supervisor can say why without reading logs.
 */
import { writeFileSync } from "node:fs";

export const ServiceExitCode = {
  Stopped: 0,
  Failed: 1,
  BadConfig: 2,
  StoreCannotOpen: 3,
} as const;
export type ServiceExitCode = (typeof ServiceExitCode)[keyof typeof ServiceExitCode];

/** Exit codes a restart will not cure (the supervisor backs off longer, or gives up in a one-shot run). */
export function isPermanentExit(code: number | null): boolean {
  return code === ServiceExitCode.BadConfig || code === ServiceExitCode.StoreCannotOpen;
}

/** The variable naming the file the exit reason goes to. */
export const EXIT_REASON_FILE_ENV = "CLOUDTAP_EXIT_REASON_FILE";

/** Writes the exit reason (one line, at most 2 KiB) when the supervisor asked for it; never throws. */
export function recordExitReason(reason: string, env: NodeJS.ProcessEnv = process.env): void {
  const file = env[EXIT_REASON_FILE_ENV];
  if (!file) return;
  try {
    writeFileSync(file, `${reason.replace(/\s*\n\s*/g, " ").slice(0, 2048)}\n`, { mode: 0o600 });
  } catch {
    // The reason is a courtesy to the supervisor: the log has the error either way.
  }
}

/**
 * With `CLOUDTAP_EXIT_WITH_PARENT=stdin` the process's stdin is a pipe its supervisor holds open and never
 * writes to: when the supervisor dies (even by SIGKILL) the kernel closes it, and the service shuts down as
 * on SIGTERM. Unset (a container, a shell), stdin is left alone.
 */
export const EXIT_WITH_PARENT_ENV = "CLOUDTAP_EXIT_WITH_PARENT";

/** Starts that watch when the variable asks for it; returns whether it did. */
export function exitWithParent(
  shutdown: { shutdown(reason: string, exitCode?: number): Promise<number> },
  env: NodeJS.ProcessEnv = process.env,
  stdin: NodeJS.ReadableStream & { unref?: () => void } = process.stdin,
): boolean {
  if (env[EXIT_WITH_PARENT_ENV] !== "stdin") return false;
  const gone = () => void shutdown.shutdown("the supervising process is gone (stdin closed)", 0);
  stdin.once("end", gone);
  stdin.once("close", gone);
  stdin.once("error", gone);
  stdin.resume();
  // The pipe alone never keeps the process alive.
  stdin.unref?.();
  return true;
}
