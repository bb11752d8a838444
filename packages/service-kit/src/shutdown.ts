/**
 * One process-wide shutdown: SIGINT and SIGTERM abort one AbortController, then the steps the wiring
 * registered run one after the other in reverse registration order (what was started last stops first:
 * register the NATS connection, then the consumers, then the RPC server, and the server stops accepting
 * first), and the process exits.
 *
 * Lifecycle: `onShutdown(name, step)` while starting; `signal` is aborted when shutdown begins, so loops
 * watching it wind down on their own while the steps run. Each step gets a signal that is aborted when the
 * overall deadline passes (so it can switch from graceful to forced); a step that throws is logged and the
 * next one runs (exit code 1). If the deadline passes, the process exits with code 1 at once, without waiting
 * for the remaining steps. A second signal during shutdown exits at once (code 130).
 */
import { ShutdownDeadlineError } from "./errors.js";
import type { Logger } from "./logger.js";

export type ShutdownStep = (signal: AbortSignal) => void | Promise<void>;

export interface ShutdownOptions {
  /** Time for all steps together. Default 15 s. */
  readonly deadlineMs?: number;
  readonly logger?: Logger;
  /** Default `process.exit`; tests pass their own. */
  readonly exit?: (code: number) => void;
  /** Signals that start shutdown. Default SIGINT and SIGTERM; none when empty (tests). */
  readonly signals?: readonly NodeJS.Signals[];
}

export interface Shutdown {
  /** Aborted when shutdown begins. */
  readonly signal: AbortSignal;
  onShutdown(name: string, step: ShutdownStep): void;
  /**
   * Begins shutdown as a signal would; resolves with the exit code once the steps ran (after `exit` was
   * called). Calling it again returns the same promise.
   */
  shutdown(reason: string, exitCode?: number): Promise<number>;
  /** Removes the signal handlers (for tests). */
  dispose(): void;
}

export const DEFAULT_SHUTDOWN_DEADLINE_MS = 15_000;

export function createShutdown(options: ShutdownOptions = {}): Shutdown {
  const controller = new AbortController();
  const steps: { name: string; step: ShutdownStep }[] = [];
  const deadlineMs = options.deadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const log = options.logger;
  const signals = options.signals ?? (["SIGINT", "SIGTERM"] as const);
  let running: Promise<number> | undefined;
  let exited = false;
  const exitOnce = (code: number) => {
    if (exited) return;
    exited = true;
    exit(code);
  };

  async function run(reason: string, requested: number): Promise<number> {
    log?.info("shutting down", { reason, steps: steps.map((s) => s.name).reverse() });
    controller.abort(new Error(`shutdown: ${reason}`));
    const deadline = new AbortController();
    let code = requested;
    let current = "";
    const timer = setTimeout(() => {
      deadline.abort(new ShutdownDeadlineError(current, deadlineMs));
    }, deadlineMs);
    const passed = new Promise<"deadline">((resolve) =>
      deadline.signal.addEventListener("abort", () => resolve("deadline"), { once: true }),
    );
    try {
      for (const { name, step } of [...steps].reverse()) {
        current = name;
        const started = performance.now();
        try {
          const outcome = await Promise.race([Promise.resolve().then(() => step(deadline.signal)), passed]);
          if (outcome === "deadline") {
            log?.error("shutdown deadline passed", { step: name, deadlineMs, error: deadline.signal.reason });
            exitOnce(1);
            return 1;
          }
          log?.debug("shutdown step done", { step: name, ms: Math.round(performance.now() - started) });
        } catch (err) {
          code = code === 0 ? 1 : code;
          log?.error("shutdown step failed", { step: name, error: err });
        }
      }
    } finally {
      clearTimeout(timer);
    }
    log?.info("shut down", { exitCode: code });
    exitOnce(code);
    return code;
  }

  const onSignal = (sig: NodeJS.Signals) => {
    if (running) {
      log?.warn("second signal during shutdown: exiting now", { signal: sig });
      exitOnce(130);
      return;
    }
    void shutdownApi.shutdown(sig, 0);
  };
  for (const s of signals) process.on(s, onSignal);

  const shutdownApi: Shutdown = {
    signal: controller.signal,
    onShutdown(name, step) {
      steps.push({ name, step });
    },
    shutdown(reason, exitCode = 0) {
      running ??= run(reason, exitCode);
      return running;
    },
    dispose() {
      for (const s of signals) process.off(s, onSignal);
    },
  };
  return shutdownApi;
}

let processWide: Shutdown | undefined;

/** The process's one shutdown (created on first call; later options are ignored). */
export function processShutdown(options: ShutdownOptions = {}): Shutdown {
  processWide ??= createShutdown(options);
  return processWide;
}
