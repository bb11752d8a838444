import { parseArgs } from "node:util";
import { describeOutputReport, type EgressSpec, isEgressError, SlowClientPolicy } from "@cloudtap/egress";
import { captureFileOutput, openEgress } from "@cloudtap/egress/node";
import { listBlobs, readKeyLogs, sortBlobsByTime } from "@cloudtap/fetch";
import { createFlowFilter } from "@cloudtap/flow";
import { openStore } from "@cloudtap/object-store";
import {
  addKeyLogs,
  createStitcherFromSettings,
  flowTableCountersOf,
  formatStitchRunReport,
  runStitchJob,
  type StitcherSettings,
  type StitchJobReport,
  type StitchProgress,
  stitcherCountersOf,
  stitchRunReport,
  tlsNeeded,
  type Variant,
} from "@cloudtap/stitch";
import { defaultWorkerCount, runParallelStitch } from "@cloudtap/stitch-workers";
import { createKeyStore, nativeAead } from "@cloudtap/tls";
import type { Command } from "../command.js";
import { egressSpecFromFlags, parseCleartextPorts } from "../output-flags.js";
import { requireExistingStore } from "../store-path.js";
import { parseTime } from "../time.js";
import { formatBytes, toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const stitchCommand: Command = {
  name: "stitch",
  summary: "stitch the connections of a store back into packets: capture files, VXLAN/GENEVE, PCAP-over-IP",
  usage: `cloudtap stitch --source <store> OUTPUT... [--keys <store>] [--prefix P]
                [--variant original|cleartext|both] [--no-embed-keys] [--cleartext-port TLS:CLEAR ...]
                [--since T] [--until T] [--mtu 1500] [--filter RULE ...] [--on-corrupt resync|skip-rest]
                [--no-fin-on-timeout] [--workers auto|N] [--json]
  OUTPUT, at least one, any number at once:
    --pcap FILE | --pcapng FILE        a capture file (each may be given several times)
    --vxlan HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S] ...
                                       VXLAN to an NDR (port 4789)
    --geneve HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S][,options=user+tenant+...] ...
                                       GENEVE (port 6081) with cloudtap metadata options
    --policy FILE                      export policy (JSON): targets, rules, VNIs, rates, pacing, remapping
    --remap-log FILE                   where address mappings are logged (JSON lines; required when remapping)
    --pcap-over-ip [ADDR:]PORT         PCAP-over-IP server (default 127.0.0.1:57012)
      [--pcap-over-ip-clients N]       wait for N clients before stitching
      [--pcap-over-ip-slow block|drop|disconnect]   a client that does not keep up: block (the default
                                       for this one-shot run) waits for it, and drops it only after
                                       --pcap-over-ip-block-timeout (default 30s); drop skips chunks, disconnect
                                       closes it (both counted)
      [--pcap-over-ip-resolution microsecond|nanosecond]   time stamps on the stream (nanosecond: magic
                                       a1b23c4d, read by tshark and Wireshark; default microsecond)
    --out-dir DIR [--out-format pcap|pcapng] [--rotate-size S] [--rotate-time T] [--out-prefix P]
                  [--upload <store>]   rotating capture files (S: 1GiB, T: 1h), optionally uploaded when complete

  Lists the data blobs of the window (T: ISO 8601, Unix seconds, or -2h), decodes them, orders and
  de-duplicates each connection's bytes across blobs, and writes Ethernet/IP/TCP|UDP packets with correct
  handshakes, sequence numbers, ACKs and checksums. Missing bytes stay visible as sequence jumps.
  --filter rules are ordered, first match wins: "accept port=443", "reject user=*@example.com",
  "accept src=10.0.0.0/8,proto=tcp", "reject any" (keys: user tenant app policy device identity port src dst proto).
  TLS: key logs are read from <keys>/keys/ (default: the source store). --variant cleartext writes, for each
  connection that decrypts, a TCP flow carrying exactly its decrypted application data, server port mapped
  (443->80, 8443->8080, 465->25, 993->143, 995->110, other TLS ports->80; --cleartext-port 9443:8080 adds to
  the map); flows that are not TLS pass through unchanged. --variant both writes the original flows too.
  A pcapng embeds each original TLS flow's keys in a Decryption Secrets Block before its packets (the file is
  then created mode 0600); --no-embed-keys leaves them out.
  Tunnels: segments are sized so that every packet fits each target's MTU after encapsulation (the outer
  packet is never fragmented); both directions of a connection share one outer 5-tuple. A target that does
  not receive (port closed, route gone) is counted in the report; the run goes on. The policy's rules route
  flows to targets (first match wins; keys as --filter plus variant=original|cleartext); see the egress
  package README for the policy format. The --vxlan/--geneve targets are added to the policy's.
  Rotating files are named <prefix>-<UTC time of first packet>-<seq>.<ext>, written as .partial and renamed.
  --workers: with one capture file as the only output, connections are sharded over N worker threads by
  connection id and their packets merged by time into the file (auto: 1 below 4 cores, else cores - 1, at
  most 4; 1: one thread). Other outputs, and --on-corrupt skip-rest, run on one thread.
  A damaged blob is reported by name and what of it passes its checksums is used (--on-corrupt resync).
  Every loss (damaged or unreadable blobs and key logs, records out of their blob's time range, late or
  dropped records, reused connection ids, datagrams too large, TLS that did not decrypt) is a named problem.
  Exit status: 0 when the run completed (its problems are reported, not fatal), 1 on a fatal error (a
  --source or --keys that does not exist included), 130 when interrupted, 2 on a bad command line.`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: {
        source: { type: "string" },
        keys: { type: "string" },
        prefix: { type: "string", default: "" },
        since: { type: "string" },
        until: { type: "string" },
        pcap: { type: "string", multiple: true, default: [] },
        pcapng: { type: "string", multiple: true, default: [] },
        mtu: { type: "string", default: "1500" },
        filter: { type: "string", multiple: true, default: [] },
        "on-corrupt": { type: "string", default: "resync" },
        "no-fin-on-timeout": { type: "boolean", default: false },
        variant: { type: "string", default: "original" },
        "no-embed-keys": { type: "boolean", default: false },
        "cleartext-port": { type: "string", multiple: true, default: [] },
        json: { type: "boolean", default: false },
        workers: { type: "string", default: "auto" },
        vxlan: { type: "string", multiple: true, default: [] },
        geneve: { type: "string", multiple: true, default: [] },
        policy: { type: "string" },
        "remap-log": { type: "string" },
        "pcap-over-ip": { type: "string" },
        "pcap-over-ip-clients": { type: "string", default: "0" },
        "pcap-over-ip-slow": { type: "string", default: SlowClientPolicy.Block },
        "pcap-over-ip-block-timeout": { type: "string", default: "30s" },
        "pcap-over-ip-resolution": { type: "string", default: "microsecond" },
        "out-dir": { type: "string" },
        "out-format": { type: "string", default: "pcapng" },
        "out-prefix": { type: "string", default: "cloudtap" },
        "rotate-size": { type: "string" },
        "rotate-time": { type: "string" },
        upload: { type: "string" },
      },
    });
    if (!values.source) throw new UsageError("--source is required");
    const onCorruption = values["on-corrupt"];
    if (onCorruption !== "resync" && onCorruption !== "skip-rest")
      throw new UsageError("--on-corrupt is resync or skip-rest");
    const mtu = Number(values.mtu);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
      throw new UsageError("--mtu must be an integer in 576..65535");
    const variant = values.variant as Variant;
    if (!["original", "cleartext", "both"].includes(variant))
      throw new UsageError("--variant is original, cleartext or both");
    const cleartextPorts = parseCleartextPorts(values["cleartext-port"]);
    const workers = parseWorkers(values.workers);
    const sinceNs = values.since === undefined ? undefined : parseTime("--since", values.since);
    const untilNs = values.until === undefined ? undefined : parseTime("--until", values.until);
    const window = {
      prefix: values.prefix,
      ...(sinceNs === undefined ? {} : { sinceNs }),
      ...(untilNs === undefined ? {} : { untilNs }),
      signal: io.signal,
    };
    const outputs = egressSpecFromFlags(values, mtu, false);
    requireExistingStore("--source", values.source);
    if (values.keys) requireExistingStore("--keys", values.keys);
    const store = openStore(values.source);

    const keyLogs = await readKeyLogs(openStore(values.keys ?? values.source), window);
    // One-shot runs keep every key of the window: no expiry within the run, a generous byte cap.
    const keyStore = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER, maxBytes: 1024 * 1024 * 1024 });
    const { counters: keys, problems: keyLineProblems } = addKeyLogs(keyStore, keyLogs.keyLogs);
    const listed = [];
    for await (const b of listBlobs(store, window)) listed.push(b);
    const blobs = sortBlobsByTime(listed);
    const totalBytes = blobs.reduce((n, b) => n + b.size, 0);

    const spec: EgressSpec = {
      ...outputs,
      embedKeys: !values["no-embed-keys"] && keys.lines > 0,
      // Decrypted payloads in the frames: every file output and upload is owner-only.
      decryptedContent: variant !== "original" && keys.lines > 0,
    };
    const settings: StitcherSettings = {
      mtu,
      filter: values.filter,
      finOnTimeout: !values["no-fin-on-timeout"],
      ...(tlsNeeded(variant, keys.lines > 0)
        ? { tls: { variant, cleartextPorts, embedKeys: spec.embedKeys } }
        : {}),
    };
    const files = spec.files ?? [];
    const oneFile =
      files.length === 1 && !spec.rotating && !spec.pcapOverIp && (spec.policy?.targets?.length ?? 0) === 0;
    const started = process.hrtime.bigint();
    const tty = io.stderr.isTTY === true;
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    const summarize = (
      r: Omit<
        Parameters<typeof stitchRunReport>[0],
        "keys" | "keyLogProblems" | "variant" | "aeadOpener" | "seconds"
      >,
    ) => {
      const native = nativeAead();
      const report = stitchRunReport({
        ...r,
        seconds: seconds(),
        keys,
        keyLogProblems: [...keyLogs.problems, ...keyLineProblems],
        variant,
        aeadOpener: native.binding ? "native" : `node:crypto (native opener ${native.reason})`,
      });
      const text = values.json
        ? toJson(report)
        : formatStitchRunReport(report, { describeOutput: describeOutputReport, formatBytes }).join("\n");
      io.stdout.write(`${text}\n`);
      return 0;
    };

    // Workers need resync: with skip-rest a blob stops at damage that only one worker sees.
    if (workers > 1 && oneFile && onCorruption === "resync") {
      createFlowFilter(values.filter); // a bad rule fails here, as in the one-thread run
      const file = files[0]!;
      const output = captureFileOutput(file, spec) as ReturnType<typeof captureFileOutput> &
        Parameters<typeof runParallelStitch>[0]["output"];
      let job: Awaited<ReturnType<typeof runParallelStitch>>;
      try {
        for (const c of output.flush()) await output.write(c); // the file header
        job = await runParallelStitch({
          workers,
          blobs,
          keyLogs: keyLogs.keyLogs.map((k) => k.text),
          output,
          signal: io.signal,
          settings: {
            ...settings,
            format: file.format,
            ...(file.format === "pcap" ? { resolution: "nanosecond" as const } : {}),
          },
          ...(tty ? { onProgress: progressLine(io, started, blobs.length, totalBytes) } : {}),
        });
        await output.close();
      } catch (err) {
        await output.abort();
        throw err;
      } finally {
        if (tty) io.stderr.write("\r\x1b[K");
      }
      return summarize({
        output: file.path,
        outputs: [output.report()],
        encapsulationBytes: 0,
        workers: job.workers,
        job,
        stitcher: job.stitcher,
        table: job.table,
      });
    }

    const opened = await openEgress(spec, {
      openUploadStore: (url) => openStore(url),
      signal: io.signal,
    }).catch((err: unknown) => {
      throw isEgressError(err) ? new UsageError(err.message) : err;
    });
    const { egress, encapsulationBytes } = opened;
    const stitcher = createStitcherFromSettings(
      { ...settings, encapsulationBytes },
      { sink: egress, keys: keyStore, embedKeys: (text) => egress.embedKeys(text) },
    );
    let job: StitchJobReport;
    try {
      if (opened.pcapOverIp && (spec.pcapOverIp?.waitForClients ?? 0) > 0) {
        const at = opened.pcapOverIp.address;
        io.stderr.write(
          `waiting for ${spec.pcapOverIp!.waitForClients} PCAP-over-IP client(s) on ${at.host}:${at.port}\n`,
        );
      }
      await opened.waitForClients(io.signal);
      job = await runStitchJob({
        blobs: (async function* () {
          yield* blobs;
        })(),
        stitcher,
        output: egress,
        sink: egress,
        onCorruption,
        signal: io.signal,
        ...(tty
          ? {
              onProgress: progressLine(io, started, blobs.length, totalBytes, () => {
                const st = stitcher.stats;
                return st.flowsTcp + st.flowsUdp;
              }),
            }
          : {}),
      });
      await opened.close();
    } catch (err) {
      await opened.abort();
      throw err;
    } finally {
      if (tty) io.stderr.write("\r\x1b[K");
    }
    const reports = egress.report().outputs;
    return summarize({
      output:
        files.length === 1 && reports.length === 1 ? files[0]!.path : reports.map((o) => o.name).join(", "),
      outputs: reports,
      encapsulationBytes,
      workers: 1,
      job,
      stitcher: stitcherCountersOf(stitcher),
      table: flowTableCountersOf(stitcher),
    });
  },
};

/** The progress line on a terminal: blobs, bytes, flows, rate, ETA (at most 5 redraws a second). */
function progressLine(
  io: Parameters<Command["run"]>[1],
  started: bigint,
  blobCount: number,
  totalBytes: number,
  flows?: () => number,
): (p: StitchProgress) => void {
  let lastDraw = 0;
  return (p) => {
    const now = Date.now();
    if (now - lastDraw < 200 && p.blobs < blobCount) return;
    lastDraw = now;
    const sec = Number(process.hrtime.bigint() - started) / 1e9;
    const rate = p.blobBytes / Math.max(sec, 1e-3);
    const eta = rate > 0 ? (totalBytes - p.blobBytes) / rate : 0;
    io.stderr.write(
      `\r\x1b[K${p.blobs}/${blobCount} blobs, ${formatBytes(p.blobBytes)}/${formatBytes(totalBytes)}, ` +
        `${flows ? `${flows()} flows, ` : ""}${(rate / 1e6).toFixed(0)} MB/s, ETA ${eta.toFixed(0)} s`,
    );
  };
}

function parseWorkers(v: string): number {
  if (v === "auto") return defaultWorkerCount();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new UsageError("--workers is auto or an integer in 1..64");
  return n;
}
