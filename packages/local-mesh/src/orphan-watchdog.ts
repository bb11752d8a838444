/**
 * The mesh's orphan watchdog, its own small process (`node orphan-watchdog.ts`, started first by
 * `LocalMesh`): it reads lines `wait <pid>` and `term <pid>` on stdin, one per child the mesh starts
 * (again on each restart), and does nothing else until stdin closes. The mesh closes it after its ordered
 * stop; when the mesh's process dies without one (SIGKILL, a crash), the kernel closes it. Then:
 *
 * 1. the `wait` children (the services, which watch a stdin pipe of their own and shut down by themselves)
 *    get `graceMs` to exit, then SIGKILL;
 * 2. the `term` children (nats-server, which cannot watch a pipe) get SIGTERM, `graceMs` to exit, then
 *    SIGKILL; nats-server goes last, as in the ordered stop.
 *
 * A pid is signalled only while it is the process that was announced: its start time in /proc/<pid>/stat is
 * read when the line arrives and compared before every signal, so a reused pid is never touched.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const GRACE_MS = Number(process.env["CLOUDTAP_WATCHDOG_GRACE_MS"] ?? 10_000);

interface Watched {
  readonly pid: number;
  readonly startTime: string;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined when the pid is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    if (state === "Z" || state === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

const same = (w: Watched) => processStartTime(w.pid) === w.startTime;

function signal(w: Watched, sig: NodeJS.Signals): void {
  if (!same(w)) return;
  try {
    process.kill(w.pid, sig);
  } catch {
    // Gone between the check and the signal.
  }
}

async function ended(group: readonly Watched[], withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (group.some(same) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const w of group) signal(w, "SIGKILL");
}

const waitFor: Watched[] = [];
const terminate: Watched[] = [];
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const m = /^(wait|term) (\d+)$/.exec(line.trim());
  if (!m) return;
  const pid = Number(m[2]);
  const startTime = processStartTime(pid);
  if (startTime === undefined) return;
  (m[1] === "wait" ? waitFor : terminate).push({ pid, startTime });
});
lines.on("close", async () => {
  await ended(waitFor, GRACE_MS);
  for (const w of terminate) signal(w, "SIGTERM");
  await ended(terminate, GRACE_MS);
  process.exit(0);
});
