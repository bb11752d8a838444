/**
 * One supervised OS process: started with its environment, its output appended to a log file, restarted
 * when it dies unexpectedly (as a compose `restart: unless-stopped` would, with a growing delay), and
 * stopped with SIGTERM, then SIGKILL after a bound. Only processes this supervisor started are signalled.
 *
 * Why it exited: with `exitReasonFile` the process is told (`CLOUDTAP_EXIT_REASON_FILE`) where to write one
 * line before a failing exit (services do, see service-kit's exit codes); `lastExit` holds the exit status and
 * that line. `restartPolicy` decides per exit whether to restart and after how long.
 *
 * Where it listens: with `listenFile` the process is told (`CLOUDTAP_LISTEN_FILE`) where to report the ports
 * its servers bound (service-kit `recordListening`); the file is removed before every start, so what it holds
 * is the current process's. `pin` changes the command line of the starts after it (the supervisor pins a
 * port the first process chose, so a restart listens where its peers were told to connect).
 *
 * Ending with this process: the child's stdin is a pipe this process holds open and never writes to, and
 * `CLOUDTAP_EXIT_WITH_PARENT=stdin` tells a service to shut down when it closes, which the kernel does when
 * this process dies, SIGKILL included (service-kit `exitWithParent`). A program that cannot watch it
 * (nats-server) is left to `LocalMesh`'s orphan watchdog, told of every pid through `onStart`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readFileSync, rmSync, type WriteStream } from "node:fs";
import { EXIT_REASON_FILE_ENV, EXIT_WITH_PARENT_ENV, LISTEN_FILE_ENV } from "@cloudtap/service-kit";

export { EXIT_REASON_FILE_ENV };

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The line the process wrote to its exit reason file, if any. */
  readonly reason?: string;
  /** When it exited (ISO 8601). */
  readonly at: string;
}

/** The default delay before restart number `restarts + 1`: 250 ms doubling, at most 5 s. */
export function defaultRestartDelayMs(restarts: number): number {
  return Math.min(5000, 250 * 2 ** Math.min(restarts, 5));
}

export interface SupervisedProcessOptions {
  /** Instance name in logs and status ("stitcher-1"). */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Appended to with the process's stdout and stderr. */
  readonly logFile: string;
  /** Restart when it exits unexpectedly. Default true. */
  readonly restart?: boolean;
  /**
   * Per unexpected exit: the delay before the restart in ms, or `undefined` for no restart (then `onExit`
   * is the last word). Default `defaultRestartDelayMs(restarts)`; ignored when `restart` is false.
   */
  readonly restartPolicy?: (exit: ProcessExit, restarts: number) => number | undefined;
  /** Where the process writes its exit reason (passed as `CLOUDTAP_EXIT_REASON_FILE`). */
  readonly exitReasonFile?: string;
  /** Where the process reports the ports it bound (passed as `CLOUDTAP_LISTEN_FILE`). */
  readonly listenFile?: string;
  /** Called on every start after the first (the new process started), with the exit that caused it. */
  readonly onRestart?: (name: string, exit: ProcessExit) => void;
  /** Called with the pid of every process started (the first and each restart). */
  readonly onStart?: (pid: number) => void;
  /** Called when the process exits while no stop was asked (before any restart). */
  readonly onExit?: (name: string, exit: ProcessExit) => void;
}

export class SupervisedProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  restarts = 0;
  /** The last exit while no stop was asked (absent until one). */
  lastExit: ProcessExit | undefined;
  /** When the next restart is due (ISO 8601), while one is scheduled. */
  restartAt: string | undefined;
  private exited: Promise<void> = Promise.resolve();
  private args: readonly string[];
  private env: Readonly<Record<string, string>>;

  constructor(private readonly o: SupervisedProcessOptions) {
    this.log = createWriteStream(o.logFile, { flags: "a", mode: 0o600 });
    this.args = o.args;
    this.env = o.env;
  }

  /** Replaces the arguments and adds to the environment of every later start (the running one is unchanged). */
  pin(change: { readonly args?: readonly string[]; readonly env?: Readonly<Record<string, string>> }): void {
    if (change.args) this.args = change.args;
    if (change.env) this.env = { ...this.env, ...change.env };
  }

  get name(): string {
    return this.o.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private readReason(): string | undefined {
    if (!this.o.exitReasonFile) return undefined;
    try {
      const text = readFileSync(this.o.exitReasonFile, "utf8").trim();
      return text === "" ? undefined : text;
    } catch {
      return undefined;
    }
  }

  start(): void {
    if (this.o.exitReasonFile) rmSync(this.o.exitReasonFile, { force: true });
    if (this.o.listenFile) rmSync(this.o.listenFile, { force: true });
    const child = spawn(process.execPath === this.o.command ? process.execPath : this.o.command, this.args, {
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        ...this.env,
        ...(this.o.exitReasonFile ? { [EXIT_REASON_FILE_ENV]: this.o.exitReasonFile } : {}),
        ...(this.o.listenFile ? { [LISTEN_FILE_ENV]: this.o.listenFile } : {}),
        [EXIT_WITH_PARENT_ENV]: "stdin",
      },
      // stdin: held open, never written; it closes when this process dies.
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child = child;
    // A child that exits or never reads its stdin must not fail this process with EPIPE.
    child.stdin?.on("error", () => {});
    if (child.pid !== undefined) this.o.onStart?.(child.pid);
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        child.stdin?.destroy();
        resolve();
        if (this.stopping || this.child !== child) return;
        const reason = this.readReason();
        const exit: ProcessExit = {
          code,
          signal,
          ...(reason ? { reason } : {}),
          at: new Date().toISOString(),
        };
        this.lastExit = exit;
        const delay =
          this.o.restart === false
            ? undefined
            : this.o.restartPolicy
              ? this.o.restartPolicy(exit, this.restarts)
              : defaultRestartDelayMs(this.restarts);
        if (delay !== undefined) this.restartAt = new Date(Date.now() + delay).toISOString();
        this.o.onExit?.(this.o.name, exit);
        if (delay === undefined) return;
        this.timer = setTimeout(() => {
          if (this.stopping) return;
          this.restartAt = undefined;
          this.restarts++;
          this.start();
          // After the start: the new pid is what the mesh state records.
          this.o.onRestart?.(this.o.name, exit);
        }, delay);
      });
    });
    child.once("error", (err) => this.log.write(`supervisor: ${this.o.name}: ${err.message}\n`));
  }

  /** Sends a signal to the running process (chaos tests: SIGKILL). */
  signal(signal: NodeJS.Signals): boolean {
    return this.running ? this.child!.kill(signal) : false;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. No restart after this. */
  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.running) {
      this.child!.kill("SIGTERM");
      const kill = setTimeout(() => this.child?.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(kill);
    }
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}
