/**
 * One supervised OS process: started with its environment, its output appended to a log file, restarted
 * when it dies unexpectedly (as a compose `restart: unless-stopped` would, with a growing delay), and
 * stopped with SIGTERM, then SIGKILL after a bound. Only processes this supervisor started are signalled.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";

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
  /** Called on every start after the first (the new process started), with the exit that caused it. */
  readonly onRestart?: (name: string, exit: { code: number | null; signal: NodeJS.Signals | null }) => void;
  /** Called when the process exits while no stop was asked (before any restart). */
  readonly onExit?: (name: string, exit: { code: number | null; signal: NodeJS.Signals | null }) => void;
}

export class SupervisedProcess {
  private child: ChildProcess | undefined;
  private log: WriteStream;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  restarts = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly o: SupervisedProcessOptions) {
    this.log = createWriteStream(o.logFile, { flags: "a", mode: 0o600 });
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

  start(): void {
    const child = spawn(
      process.execPath === this.o.command ? process.execPath : this.o.command,
      this.o.args,
      {
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ...this.o.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.child = child;
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        if (this.stopping || this.child !== child) return;
        this.o.onExit?.(this.o.name, { code, signal });
        if (this.o.restart === false) return;
        const delay = Math.min(5000, 250 * 2 ** Math.min(this.restarts, 5));
        this.timer = setTimeout(() => {
          if (this.stopping) return;
          this.restarts++;
          this.start();
          // After the start: the new pid is what the mesh state records.
          this.o.onRestart?.(this.o.name, { code, signal });
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
