/**
 * A real nats-server (Debian's, on PATH) for tests: on 127.0.0.1, a free client port, JetStream with file
 * storage in a temporary directory. `restart()` keeps the port and the store directory, so streams, consumers
 * and KV buckets survive it as they would a production restart. Tests fail loudly (never skip) when the
 * binary is missing.
 *
 * Lifecycle: `startNatsServer()` resolves once the server's health endpoint says ready (JetStream included);
 * `stop()` (SIGTERM) or `kill()` (SIGKILL) end it by its PID; `cleanup()` stops it and removes the store.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface NatsServerOptions {
  readonly jetstream?: boolean;
  /** Default: a new temporary directory, removed by `cleanup()`. */
  readonly storeDir?: string;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
  /** How long to wait for readiness. Default 15 s. */
  readonly startTimeoutMs?: number;
}

export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** PID of the running server; undefined while stopped. */
  readonly pid: number | undefined;
  /** `http://127.0.0.1:<port>` of its monitoring endpoint (`/jsz`, `/healthz`); a new port after a restart. */
  readonly monitorUrl: string;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crash) and wait for the exit. */
  kill(): Promise<void>;
  /** Stops (SIGTERM) if running, then starts again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stops and removes the store directory if this harness made it. */
  cleanup(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const address = srv.address();
  const port = typeof address === "object" && address ? address.port : 0;
  srv.close();
  await once(srv, "close");
  return port;
}

async function waitReady(monitorPort: number, child: ChildProcess, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited during start (${child.exitCode ?? child.signalCode}): ${log()}`);
    }
    try {
      // /healthz answers 200 only once the server, and JetStream when enabled, is ready.
      const res = await fetch(`http://127.0.0.1:${monitorPort}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`nats-server not ready after ${timeoutMs} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const ownStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "cloudtap-nats-"));
  const port = await freePort();
  let monitorPort = await freePort();
  let child: ChildProcess | undefined;
  let output = "";

  async function launch(): Promise<void> {
    const args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort)];
    if (options.jetstream !== false) args.push("-js", "-sd", storeDir);
    args.push(...(options.args ?? []));
    output = "";
    const proc = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (d: string) => {
      output = (output + d).slice(-4000);
    });
    const spawned = await Promise.race([
      once(proc, "spawn").then(() => undefined),
      once(proc, "error").then(([err]) => err as NodeJS.ErrnoException),
    ]);
    if (spawned) {
      if (spawned.code === "ENOENT") {
        throw new Error("nats-server is not on PATH: this test needs it (apt-get install nats-server)", {
          cause: spawned,
        });
      }
      throw spawned;
    }
    child = proc;
    // A test process that dies (timeout, crash) must not leave its server behind.
    const onExit = () => proc.kill("SIGKILL");
    process.once("exit", onExit);
    proc.once("exit", () => process.off("exit", onExit));
    try {
      await waitReady(monitorPort, proc, options.startTimeoutMs ?? 15_000, () => output);
    } catch (err) {
      await end("SIGKILL");
      throw err;
    }
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (!proc) return;
    child = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, "exit");
    proc.kill(signal);
    await exited;
  }

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return child?.pid;
    },
    get monitorUrl() {
      return `http://127.0.0.1:${monitorPort}`;
    },
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    async restart() {
      await end("SIGTERM");
      // The monitor port is ours only while the server runs; take a fresh one rather than race for it.
      monitorPort = await freePort();
      await launch();
    },
    async cleanup() {
      await end("SIGTERM");
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
