import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  MESH_STATE_FILE,
  type MeshState,
  queryReplays,
  queryStatuses,
  type ReplayProgress,
  runningReplayFiles,
} from "@cloudtap/local-mesh";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const statusCommand: Command = {
  name: "status",
  summary: CommandSummary.status,
  usage: `cloudtap status --state-dir DIR [--json]
  Asks every service instance of the mesh whose state folder is DIR (as cloudtap up printed it) for its
  status over mutual TLS: service, address, process id, state, restarts, and its counters (blobs, records,
  batches, frames, keys, drops and quarantines by reason; a replay's series carry its run id), then every
  replay (cloudtap replay): its window, state, blobs and shards done, and the mirror-egress of a running
  one among the instances. Exit status 1 when an instance does not answer.`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: { "state-dir": { type: "string" }, json: { type: "boolean", default: false } },
    });
    const dir = values["state-dir"];
    if (!dir) throw new UsageError("--state-dir is required");
    let state: MeshState;
    try {
      state = JSON.parse(readFileSync(join(dir, MESH_STATE_FILE), "utf8")) as MeshState;
    } catch (err) {
      throw new UsageError(`--state-dir ${dir}: no mesh state (${(err as Error).message})`);
    }
    // A running replay's own mirror-egress is an instance of the mesh while it runs.
    const withReplays: MeshState = {
      ...state,
      instances: [...state.instances, ...runningReplayFiles(dir).map((r) => r.egress)],
    };
    const rows = await queryStatuses(withReplays);
    const down = rows.filter((r) => r.instance.address !== "" && !r.status);
    let replays: ReplayProgress[] = [];
    let replayError: string | undefined;
    try {
      replays = await queryReplays(state);
    } catch (err) {
      replayError = (err as Error).message;
    }
    if (values.json) {
      io.stdout.write(
        `${toJson({ natsUrl: state.natsUrl, instances: rows, replays, ...(replayError ? { replayError } : {}) })}\n`,
      );
      return down.length ? 1 : 0;
    }
    for (const r of rows) {
      const i = r.instance;
      const head = `${i.name.padEnd(14)} ${i.service.padEnd(13)} pid ${String(i.pid ?? "-").padEnd(7)} ${i.address.padEnd(16)} restarts ${i.restarts}`;
      if (!r.status) {
        io.stdout.write(`${head}  ${i.address === "" ? "" : `DOWN: ${r.error}`}\n`);
        if (i.lastExit)
          io.stdout.write(
            `    last exit ${i.lastExit.signal ?? `status ${i.lastExit.code}`} at ${i.lastExit.at}` +
              `${i.lastExit.reason ? `: ${i.lastExit.reason}` : ""}` +
              `${i.restartAt ? `; next restart at ${i.restartAt}` : ""}\n`,
          );
        continue;
      }
      io.stdout.write(`${head}  ${r.status["state"]}\n`);
      const counters = Object.entries((r.status["counters"] ?? {}) as Record<string, number>);
      for (const [k, v] of counters) io.stdout.write(`    ${k} ${v}\n`);
    }
    if (replayError) io.stdout.write(`replays: not read (${replayError})\n`);
    for (const p of replays)
      io.stdout.write(
        `replay ${p.runId} ${p.state.padEnd(8)} window ${p.sinceNs}..${p.untilNs}  blobs ${p.blobsDone} ` +
          `(quarantined ${p.blobsQuarantined})  shards ${p.shardsDone}/${p.shardCount}  egress ${p.mirrorEgressAddr}\n`,
      );
    return down.length ? 1 : 0;
  },
};
