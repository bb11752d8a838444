import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LocalReplay, MESH_STATE_FILE, type MeshState } from "@cloudtap/local-mesh";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { parseTime } from "../time.js";
import { toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const replayCommand: Command = {
  name: "replay",
  summary: CommandSummary.replay,
  usage: `cloudtap replay --state-dir DIR --since T --until T OUTPUT... [--filter RULE ...] [--tapper ID ...]
                    [--mtu 1500] [--no-embed-keys] [--json]
  OUTPUT, at least one (a mirror-egress of the replay's own writes them):
    --pcap FILE | --pcapng FILE ...   capture files
    --vxlan HOST[:PORT][,vni=N]... | --geneve ...   tunnels (as cloudtap stitch)
    --pcap-over-ip [ADDR:]PORT
    --out-dir DIR [--out-format pcap|pcapng]   rotating capture files

  The mesh whose state folder is DIR (as cloudtap up printed it) runs the window [--since, --until) once more
  under a run id of its own: its fetchers list the window (the blobs cloudtap stitch --since --until reads),
  its stitchers stitch it with --filter's flow rules (default: the mesh's), and a mirror-egress started for
  the replay writes the OUTPUTs. Continuous mode goes on beside it, untouched: the replay has its own
  subjects, consumers and outputs. --tapper keeps only the blobs of those tappers. Exits 0 once every shard
  of the window is done and the replay's sinks are flushed; cloudtap status shows its progress meanwhile.`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: {
        "state-dir": { type: "string" },
        since: { type: "string" },
        until: { type: "string" },
        filter: { type: "string", multiple: true, default: [] },
        tapper: { type: "string", multiple: true, default: [] },
        mtu: { type: "string" },
        "no-embed-keys": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        pcap: { type: "string", multiple: true, default: [] },
        pcapng: { type: "string", multiple: true, default: [] },
        vxlan: { type: "string", multiple: true, default: [] },
        geneve: { type: "string", multiple: true, default: [] },
        "pcap-over-ip": { type: "string" },
        "out-dir": { type: "string" },
        "out-format": { type: "string" },
      },
    });
    const dir = values["state-dir"];
    if (!dir) throw new UsageError("--state-dir is required (the folder cloudtap up printed)");
    if (!values.since || !values.until) throw new UsageError("--since and --until are required");
    const sinceNs = parseTime("--since", values.since);
    const untilNs = parseTime("--until", values.until);
    if (untilNs <= sinceNs) throw new UsageError("--until must be after --since");
    const outFormat = values["out-format"];
    if (outFormat !== undefined && outFormat !== "pcap" && outFormat !== "pcapng")
      throw new UsageError("--out-format is pcap or pcapng");
    const outputs = {
      pcap: values.pcap,
      pcapng: values.pcapng,
      vxlan: values.vxlan,
      geneve: values.geneve,
      ...(values["pcap-over-ip"] ? { pcapOverIp: values["pcap-over-ip"] } : {}),
      ...(values["out-dir"] ? { outDir: values["out-dir"] } : {}),
      ...(outFormat ? { outFormat } : {}),
      ...(values["no-embed-keys"] ? { embedKeys: false } : {}),
    };
    const outputCount =
      values.pcap.length +
      values.pcapng.length +
      values.vxlan.length +
      values.geneve.length +
      (values["pcap-over-ip"] ? 1 : 0) +
      (values["out-dir"] ? 1 : 0);
    if (outputCount === 0)
      throw new UsageError(
        "give at least one output: --pcap, --pcapng, --vxlan, --geneve, --pcap-over-ip or --out-dir",
      );
    let mtu: number | undefined;
    if (values.mtu !== undefined) {
      mtu = Number(values.mtu);
      if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
        throw new UsageError("--mtu must be an integer in 576..65535");
    }
    let state: MeshState;
    try {
      state = JSON.parse(readFileSync(join(dir, MESH_STATE_FILE), "utf8")) as MeshState;
    } catch (err) {
      throw new UsageError(`--state-dir ${dir}: no mesh state (${(err as Error).message})`);
    }

    const say = (line: string) => io.stderr.write(`${line}\n`);
    const replay = new LocalReplay(state, {
      sinceNs,
      untilNs,
      tapperIds: values.tapper,
      flowRules: values.filter,
      outputs,
      ...(mtu === undefined ? {} : { mtu }),
    });
    try {
      const run = await replay.start();
      say(`replay: ${run} running (its mirror-egress logs to ${replay.logFile})`);
      let shown = -1;
      const final = await replay.waitUntilDone({
        signal: io.signal,
        onProgress: (p) => {
          if (p.shardsDone !== shown) {
            shown = p.shardsDone;
            say(
              `replay: ${p.runId} ${p.state}: ${p.blobsDone} blobs, shards ${p.shardsDone}/${p.shardCount}`,
            );
          }
        },
      });
      await replay.stop();
      if (values.json) io.stdout.write(`${toJson(final)}\n`);
      else
        io.stdout.write(
          `replay ${final.runId} done: ${final.blobsDone} blobs (${final.blobsQuarantined} quarantined), ` +
            `${final.shardCount} shards; every sink flushed\n`,
        );
      return 0;
    } catch (err) {
      await replay.stop();
      throw err;
    }
  },
};
