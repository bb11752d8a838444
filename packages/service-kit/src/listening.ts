/**
 * Which ports a service's servers bound, for whoever supervises it. A supervisor on one machine (`cloudtap
 * up`) asks each service to listen on port 0 and to report here what the kernel chose, instead of picking a
 * free port itself and handing it over: a port free when the supervisor looked can be taken by anyone before
 * the service binds it (another program's listener, or an outgoing connection's local port), and the service
 * then fails to start on every restart. With `CLOUDTAP_LISTEN_FILE` set, each bound server is recorded by
 * role ("rpc", "metrics") in that file, JSON `{ "pid": N, "ports": { role: port } }`, replaced whole at each
 * record (a rename), so a reader never sees half of it. Unset (a container, a shell), nothing is written.
 */
import { renameSync, writeFileSync } from "node:fs";

/** The variable naming the file the bound ports go to. */
export const LISTEN_FILE_ENV = "CLOUDTAP_LISTEN_FILE";

/** The server roles a service reports. */
export const ListenRole = {
  /** Its gRPC server: the service's own API where it has one, StatusService and health. */
  Rpc: "rpc",
  /** Its Prometheus endpoint. */
  Metrics: "metrics",
} as const;
export type ListenRole = (typeof ListenRole)[keyof typeof ListenRole];

/** The listen file's content. */
export interface ListenReport {
  readonly pid: number;
  readonly ports: Readonly<Partial<Record<ListenRole, number>>>;
}

const recorded: Partial<Record<ListenRole, number>> = {};

/**
 * Records that this process's `role` server listens on `port` (nothing when `port` is undefined, a server
 * not started). Unlike the exit reason this is not a courtesy: a supervisor waits for it, so a write that
 * fails throws, and the service fails its start with the reason.
 */
export function recordListening(
  role: ListenRole,
  port: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const file = env[LISTEN_FILE_ENV];
  if (!file || port === undefined) return;
  recorded[role] = port;
  const report: ListenReport = { pid: process.pid, ports: { ...recorded } };
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Parses a listen file's text; undefined when it is not one (absent, half-written by a foreign writer). */
export function parseListenReport(text: string): ListenReport | undefined {
  try {
    const value = JSON.parse(text) as { pid?: unknown; ports?: unknown };
    if (typeof value.pid !== "number" || typeof value.ports !== "object" || value.ports === null)
      return undefined;
    const ports: Partial<Record<ListenRole, number>> = {};
    for (const role of Object.values(ListenRole)) {
      const port = (value.ports as Record<string, unknown>)[role];
      if (typeof port === "number" && Number.isInteger(port) && port > 0 && port <= 65535) ports[role] = port;
    }
    return { pid: value.pid, ports };
  } catch {
    return undefined;
  }
}
