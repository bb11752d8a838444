import { once } from "node:events";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { DecompressionStream, ReadableStream } from "node:stream/web";
import { parseArgs } from "node:util";
import {
  createCaptureFileOutput,
  createEgress,
  createExportPolicy,
  createPcapOverIpServer,
  createRotatingFileOutput,
  createTunnelOutput,
  createUdpTransport,
  type EgressOutput,
  type ExportPolicy,
  type ExportPolicySpec,
  encapsulationBytesFor,
  isEgressError,
  type OutputReport,
  PCAP_OVER_IP_PORT,
  type PcapOverIpServer,
  resolvePolicyAddresses,
  SlowClientPolicy,
  type TunnelTargetSpec,
} from "@cloudtap/egress";
import { createFlowFilter } from "@cloudtap/flow";
import { openStore } from "@cloudtap/object-store";
import {
  listBlobs,
  runStitchJob,
  Stitcher,
  type StitchJobReport,
  type StitchProgress,
  sortBlobsByTime,
  type Variant,
} from "@cloudtap/stitch";
import { defaultWorkerCount, runParallelStitch } from "@cloudtap/stitch-workers";
import { keysPrefix } from "@cloudtap/tap-format";
import { createKeyStore, nativeAead } from "@cloudtap/tls";
import type { Command } from "../command.js";
import { parseTime } from "../time.js";
import { formatBytes, parseDuration, parseSize, toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const stitchCommand: Command = {
  name: "stitch",
  summary: "stitch the connections of a store back into packets: capture files, VXLAN/GENEVE, PCAP-over-IP",
  usage: `cloudtap stitch --source <store> OUTPUT... [--keys <store>] [--prefix P]
                [--variant original|cleartext|both] [--no-embed-keys] [--cleartext-port TLS:CLEAR ...]
                [--since T] [--until T] [--mtu 1500] [--filter RULE ...] [--on-corrupt resync|skip-rest]
                [--no-fin-on-timeout] [--workers auto|N] [--json]
  OUTPUT, at least one, any number at once:
    --pcap FILE | --pcapng FILE        one capture file
    --vxlan HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S] ...
                                       VXLAN to an NDR (port 4789)
    --geneve HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S][,options=user+tenant+...] ...
                                       GENEVE (port 6081) with cloudtap metadata options
    --policy FILE                      export policy (JSON): targets, rules, VNIs, rates, pacing, remapping
    --remap-log FILE                   where address mappings are logged (JSON lines; required when remapping)
    --pcap-over-ip [ADDR:]PORT         PCAP-over-IP server (default 127.0.0.1:57012)
      [--pcap-over-ip-clients N]       wait for N clients before stitching
      [--pcap-over-ip-slow drop|disconnect]   a client that does not keep up (default drop)
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
  Exit status: 0 when the run completed (problems are reported, not fatal), 1 on a fatal error, 2 on a bad command line.`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: {
        source: { type: "string" },
        keys: { type: "string" },
        prefix: { type: "string", default: "" },
        since: { type: "string" },
        until: { type: "string" },
        pcap: { type: "string" },
        pcapng: { type: "string" },
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
        "pcap-over-ip-slow": { type: "string", default: SlowClientPolicy.Drop },
        "out-dir": { type: "string" },
        "out-format": { type: "string", default: "pcapng" },
        "out-prefix": { type: "string", default: "cloudtap" },
        "rotate-size": { type: "string" },
        "rotate-time": { type: "string" },
        upload: { type: "string" },
      },
    });
    if (!values.source) throw new UsageError("--source is required");
    if (values.pcap && values.pcapng)
      throw new UsageError("give one of --pcap FILE or --pcapng FILE, not both");
    const onCorruption = values["on-corrupt"];
    if (onCorruption !== "resync" && onCorruption !== "skip-rest")
      throw new UsageError("--on-corrupt is resync or skip-rest");
    const mtu = Number(values.mtu);
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535)
      throw new UsageError("--mtu must be an integer in 576..65535");
    const variant = values.variant as Variant;
    if (!["original", "cleartext", "both"].includes(variant))
      throw new UsageError("--variant is original, cleartext or both");
    const cleartextPorts: Record<number, number> = {};
    for (const m of values["cleartext-port"]) {
      const r = /^(\d+):(\d+)$/.exec(m);
      if (!r || Number(r[1]) > 65535 || Number(r[2]) > 65535)
        throw new UsageError(`--cleartext-port "${m}" is not TLSPORT:CLEARPORT`);
      cleartextPorts[Number(r[1])] = Number(r[2]);
    }
    const plan = planOutputs(values);
    const store = openStore(values.source);
    const keyStoreUrl = values.keys ?? values.source;
    const keys = await loadKeys(openStore(keyStoreUrl), values.prefix, io.signal);
    const sinceNs = values.since === undefined ? undefined : parseTime("--since", values.since);
    const untilNs = values.until === undefined ? undefined : parseTime("--until", values.until);

    const listed = [];
    for await (const b of listBlobs(store, {
      prefix: values.prefix,
      ...(sinceNs === undefined ? {} : { sinceNs }),
      ...(untilNs === undefined ? {} : { untilNs }),
      signal: io.signal,
    })) {
      listed.push(b);
    }
    const blobs = sortBlobsByTime(listed);
    const totalBytes = blobs.reduce((n, b) => n + b.size, 0);

    const embedKeys = !values["no-embed-keys"] && keys.lines > 0;
    const workers = parseWorkers(values.workers);
    const tlsOn = keys.lines > 0 || variant !== "original";
    const fileOnly =
      plan.file !== undefined &&
      plan.outDir === undefined &&
      plan.listen === undefined &&
      plan.policy.targets.length === 0;
    // Workers need resync: with skip-rest a blob stops at damage that only one worker sees.
    if (workers > 1 && fileOnly && onCorruption === "resync") {
      createFlowFilter(values.filter); // a bad rule fails here, as in the one-thread run
      const format = values.pcapng !== undefined ? "pcapng" : "pcap";
      const output = captureFile(plan.file!, format, embedKeys);
      const started = process.hrtime.bigint();
      const tty = io.stderr.isTTY === true;
      let report: Awaited<ReturnType<typeof runParallelStitch>>;
      try {
        for (const c of output.flush()) await output.write(c); // the file header
        report = await runParallelStitch({
          workers,
          blobs,
          keyLogs: keys.texts,
          output,
          signal: io.signal,
          settings: {
            format,
            mtu,
            filter: values.filter,
            finOnTimeout: !values["no-fin-on-timeout"],
            ...(format === "pcap" ? { resolution: "nanosecond" as const } : {}),
            ...(tlsOn ? { tls: { variant, cleartextPorts, embedKeys: output.embedsKeys } } : {}),
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
      return printSummary(io, values.json, {
        output: plan.file!,
        outputs: [output.report()],
        encapsulationBytes: 0,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        report,
        s: report.stitcher as unknown as SummaryStats,
        t: report.table as unknown as SummaryTable,
        keys,
        variant,
        workers: report.workers,
      });
    }
    const wiring = await openOutputs(plan, embedKeys, mtu, io.signal);
    const { egress, file, encapsulationBytes } = wiring;
    const stitcher = new Stitcher({
      sink: egress,
      mtu,
      encapsulationBytes,
      filter: values.filter,
      finOnTimeout: !values["no-fin-on-timeout"],
      ...(keys.lines > 0 || variant !== "original"
        ? {
            tls: {
              keys: keys.store,
              variant,
              cleartextPorts,
              ...(egress.embedsKeys ? { embedKeys: (text: string) => egress.embedKeys(text) } : {}),
            },
          }
        : {}),
    });
    const started = process.hrtime.bigint();
    const tty = io.stderr.isTTY === true;
    let report: Awaited<ReturnType<typeof runStitchJob>>;
    try {
      if (wiring.pcapOverIp && wiring.waitForClients > 0) {
        io.stderr.write(
          `waiting for ${wiring.waitForClients} PCAP-over-IP client(s) on ${wiring.pcapOverIp.address.host}:${wiring.pcapOverIp.address.port}\n`,
        );
        await wiring.pcapOverIp.waitForClients(wiring.waitForClients, { signal: io.signal });
      }
      report = await runStitchJob({
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
      await egress.close();
    } catch (err) {
      await egress.abort();
      throw err;
    } finally {
      if (tty) io.stderr.write("\r\x1b[K");
      await wiring.closeRemapLog();
    }
    return printSummary(io, values.json, {
      output:
        file ??
        egress
          .report()
          .outputs.map((o) => o.name)
          .join(", "),
      outputs: egress.report().outputs,
      encapsulationBytes,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      report,
      s: stitcher.stats,
      t: stitcher.table.stats,
      keys,
      variant,
      workers: 1,
    });
  },
};

type SummaryStats = Pick<
  Stitcher["stats"],
  "flowsTcp" | "flowsUdp" | "flowsFiltered" | "flowsWithoutOpen" | "packets" | "tls"
>;
type SummaryTable = Stitcher["table"]["stats"];

interface SummaryInput {
  readonly output: string;
  readonly outputs: readonly OutputReport[];
  readonly encapsulationBytes: number;
  readonly seconds: number;
  readonly report: StitchJobReport;
  readonly s: SummaryStats;
  readonly t: SummaryTable;
  readonly keys: { readonly objects: number; readonly lines: number; readonly malformed: number };
  readonly variant: Variant;
  readonly workers: number;
}

/** The final summary: one JSON object (--json) or lines for a person. Exit status 0. */
function printSummary(io: Parameters<Command["run"]>[1], json: boolean, i: SummaryInput): number {
  const { outputs, encapsulationBytes, seconds, report, s, t, keys, variant } = i;
  const summary = {
    output: i.output,
    outputs,
    encapsulationBytes,
    seconds,
    workers: i.workers,
    blobs: report.blobs,
    blobBytes: report.blobBytes,
    records: report.records,
    payloadBytes: report.payloadBytes,
    outputBytes: report.outputBytes,
    flows: {
      tcp: s.flowsTcp,
      udp: s.flowsUdp,
      filtered: s.flowsFiltered,
      withoutOpen: s.flowsWithoutOpen,
      completed: t.completed,
    },
    packets: s.packets,
    gaps: { count: t.gaps, bytes: t.gapBytes },
    duplicates: {
      bytes: t.duplicateBytes,
      overlapMismatchBytes: t.overlapMismatchBytes,
      datagrams: t.duplicateDatagrams,
      lateRecords: t.lateRecords,
    },
    caps: {
      perFlowCapHits: t.perFlowCapHits,
      totalCapHits: t.totalCapHits,
      droppedBytes: t.droppedBytes,
      droppedNewFlows: t.droppedNewFlows,
      peakBufferedBytes: t.peakBufferedBytes,
    },
    tls: {
      keyLogObjects: keys.objects,
      keyLogLines: keys.lines,
      malformedKeyLogLines: keys.malformed,
      variant,
      outcomes: s.tls.outcomes,
      unsupportedSuites: s.tls.unsupportedSuites,
      cleartextFlows: s.tls.cleartextFlows,
      cleartextBytes: { c2s: s.tls.cleartextBytes[0], s2c: s.tls.cleartextBytes[1] },
      keysEmbedded: s.tls.keysEmbedded,
      aeadOpener: nativeAead().binding ? "native" : `node:crypto (native opener ${nativeAead().reason})`,
    },
    unknownFrames: report.unknownFrames,
    problemCounts: report.problemCounts,
    problems: report.problems,
  };
  if (json) {
    io.stdout.write(`${toJson(summary)}\n`);
    return 0;
  }
  const kinds = Object.entries(report.problemCounts);
  const lines = [
    `stitched ${report.blobs} blobs (${formatBytes(report.blobBytes)}) into ${summary.output} in ${seconds.toFixed(2)} s (${(report.payloadBytes / 1e6 / Math.max(seconds, 1e-6)).toFixed(0)} MB/s of payload)${i.workers > 1 ? `, ${i.workers} worker threads` : ""}`,
    `flows:      tcp ${s.flowsTcp}, udp ${s.flowsUdp}; filtered out ${s.flowsFiltered}; without conn-open ${s.flowsWithoutOpen}`,
    `packets:    ${s.packets} (${formatBytes(report.outputBytes)} written), payload ${formatBytes(report.payloadBytes)}`,
    `gaps:       ${t.gaps} (${t.gapBytes} bytes)`,
    `duplicates: ${t.duplicateBytes} bytes (${t.overlapMismatchBytes} differing), ${t.duplicateDatagrams} datagrams, ${t.lateRecords} late records`,
    `tls:        ${keys.lines} key-log lines from ${keys.objects} object(s)${keys.malformed ? ` (${keys.malformed} malformed lines skipped)` : ""}; ` +
      `variant ${variant}; ${
        Object.entries(s.tls.outcomes)
          .map(([k, n]) => `${k} ${n}`)
          .join(", ") || "no TLS decryption"
      }; ` +
      `${s.tls.cleartextFlows} cleartext flows; keys embedded for ${s.tls.keysEmbedded}`,
    ...outputs.flatMap(describeOutput),
    `problems:   ${kinds.length ? kinds.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`,
    ...report.problems.slice(0, 10).map((p) => `  ${p.blob}: ${p.kind}: ${p.message}`),
  ];
  io.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}

/** Loads every key log under <prefix>/keys/ of a store (plain or .gz) into a key store. */
async function loadKeys(
  store: ReturnType<typeof openStore>,
  prefix: string,
  signal: AbortSignal,
): Promise<{
  store: ReturnType<typeof createKeyStore>;
  objects: number;
  lines: number;
  malformed: number;
  /** The key logs' texts (for stitch workers, which keep their own stores). */
  texts: string[];
}> {
  // One-shot runs keep every key of the window: no expiry within the run, a generous byte cap.
  const keyStore = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER, maxBytes: 1024 * 1024 * 1024 });
  let objects = 0;
  let lines = 0;
  let malformed = 0;
  const texts: string[] = [];
  for await (const obj of store.list(keysPrefix(prefix), { signal })) {
    if (!/\.keylog(\.gz)?$/.test(obj.key)) continue;
    let bytes = await store.readBytes(obj.key, { signal });
    if (obj.key.endsWith(".gz")) {
      const parts: Uint8Array[] = [];
      for await (const c of ReadableStream.from([bytes]).pipeThrough(new DecompressionStream("gzip"))) {
        parts.push(c as Uint8Array);
      }
      bytes = Buffer.concat(parts);
    }
    const text = new TextDecoder().decode(bytes);
    texts.push(text);
    const r = keyStore.addKeyLog(text, 0);
    objects++;
    lines += r.added;
    malformed += r.skippedLines.length;
  }
  return { store: keyStore, objects, lines, malformed, texts };
}

interface OutputValues {
  readonly pcap?: string | undefined;
  readonly pcapng?: string | undefined;
  readonly vxlan: readonly string[];
  readonly geneve: readonly string[];
  readonly policy?: string | undefined;
  readonly "remap-log"?: string | undefined;
  readonly "pcap-over-ip"?: string | undefined;
  readonly "pcap-over-ip-clients": string;
  readonly "pcap-over-ip-slow": string;
  readonly "out-dir"?: string | undefined;
  readonly "out-format": string;
  readonly "out-prefix": string;
  readonly "rotate-size"?: string | undefined;
  readonly "rotate-time"?: string | undefined;
  readonly upload?: string | undefined;
}

interface OutputWiring {
  readonly egress: ReturnType<typeof createEgress>;
  /** The --pcap/--pcapng file, when given. */
  readonly file: string | undefined;
  /** What the tunnels add inside the MTU (the stitcher segments to fit). */
  readonly encapsulationBytes: number;
  readonly pcapOverIp: PcapOverIpServer | undefined;
  readonly waitForClients: number;
  closeRemapLog(): Promise<void>;
}

/** "HOST[:PORT][,key=value...]" of --vxlan / --geneve, checked on its own so errors name the flag. */
function parseTargetFlag(option: string, kind: "vxlan" | "geneve", text: string): TunnelTargetSpec {
  const [endpoint = "", ...params] = text.split(",");
  let address: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(endpoint);
  if (bracketed) {
    address = bracketed[1]!;
    portText = bracketed[2];
  } else if ((endpoint.match(/:/g) ?? []).length > 1) {
    address = endpoint; // a bare IPv6 address: no port
  } else {
    [address = "", portText] = endpoint.split(":");
  }
  const spec: Record<string, unknown> = { kind, address };
  if (portText !== undefined) spec["port"] = Number(portText);
  const numbers: Record<string, string> = { vni: "vni", "cleartext-vni": "cleartextVni", mtu: "mtu" };
  for (const p of params) {
    const eq = p.indexOf("=");
    const key = eq < 0 ? p : p.slice(0, eq);
    const value = eq < 0 ? "" : p.slice(eq + 1);
    const field = numbers[key];
    if (field !== undefined) {
      if (!/^\d+$/.test(value)) throw new UsageError(`${option} ${text}: ${key} must be a number`);
      spec[field] = Number(value);
    } else if (key === "name" && value !== "") spec["name"] = value;
    else if (key === "options" && kind === "geneve")
      spec["geneveOptions"] = value === "" ? [] : value.split("+");
    else throw new UsageError(`${option} ${text}: unknown setting "${p}"`);
  }
  try {
    createExportPolicy({ targets: [spec as unknown as TunnelTargetSpec] });
  } catch (err) {
    if (isEgressError(err))
      throw new UsageError(
        `${option} ${text}: ${err.message.replace(/^export policy: targets\[0\]\.?/, "")}`,
      );
    throw err;
  }
  return spec as unknown as TunnelTargetSpec;
}

/** "[ADDR:]PORT" of --pcap-over-ip. */
function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d+)$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535)
    throw new UsageError(`--pcap-over-ip "${text}" is not [ADDR:]PORT (e.g. ${PCAP_OVER_IP_PORT})`);
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "127.0.0.1", port };
}

/** Every output option, checked (no output is opened yet). */
interface OutputPlan {
  readonly values: OutputValues;
  readonly policy: ExportPolicy;
  readonly file: string | undefined;
  readonly listen: { host: string; port: number } | undefined;
  readonly waitForClients: number;
  readonly slow: SlowClientPolicy;
  readonly outDir: string | undefined;
  readonly outFormat: "pcap" | "pcapng";
  readonly rotateBytes: number | undefined;
  readonly rotateNs: bigint | undefined;
}

function planOutputs(values: OutputValues): OutputPlan {
  const flagTargets = [
    ...values.vxlan.map((t) => parseTargetFlag("--vxlan", "vxlan", t)),
    ...values.geneve.map((t) => parseTargetFlag("--geneve", "geneve", t)),
  ];
  let spec: ExportPolicySpec = {};
  if (values.policy !== undefined) {
    let text: string;
    try {
      text = readFileSync(values.policy, "utf8");
    } catch (err) {
      throw new UsageError(`--policy ${values.policy}: ${(err as Error).message}`);
    }
    try {
      spec = JSON.parse(text) as ExportPolicySpec;
    } catch (err) {
      throw new UsageError(`--policy ${values.policy}: not valid JSON: ${(err as Error).message}`);
    }
  }
  let policy: ExportPolicy;
  try {
    policy = createExportPolicy({ ...spec, targets: [...(spec.targets ?? []), ...flagTargets] });
  } catch (err) {
    if (isEgressError(err)) throw new UsageError(`--policy ${values.policy ?? ""}: ${err.message}`);
    throw err;
  }
  if (policy.remap && values["remap-log"] === undefined) {
    throw new UsageError("the policy remaps addresses: give --remap-log FILE for the mapping log");
  }
  const listen = values["pcap-over-ip"] === undefined ? undefined : parseListen(values["pcap-over-ip"]);
  const waitForClients = Number(values["pcap-over-ip-clients"]);
  if (!Number.isInteger(waitForClients) || waitForClients < 0)
    throw new UsageError("--pcap-over-ip-clients must be a whole number");
  if (waitForClients > 0 && !listen) throw new UsageError("--pcap-over-ip-clients needs --pcap-over-ip");
  const slow = values["pcap-over-ip-slow"];
  if (slow !== SlowClientPolicy.Drop && slow !== SlowClientPolicy.Disconnect)
    throw new UsageError("--pcap-over-ip-slow is drop or disconnect");
  const outDir = values["out-dir"];
  const outFormat = values["out-format"];
  if (outFormat !== "pcap" && outFormat !== "pcapng") throw new UsageError("--out-format is pcap or pcapng");
  const rotateBytes =
    values["rotate-size"] === undefined ? undefined : parseSize("--rotate-size", values["rotate-size"]);
  const rotateNs =
    values["rotate-time"] === undefined ? undefined : parseDuration("--rotate-time", values["rotate-time"]);
  if (
    (rotateBytes !== undefined || rotateNs !== undefined || values.upload !== undefined) &&
    outDir === undefined
  )
    throw new UsageError("--rotate-size, --rotate-time and --upload go with --out-dir");
  const file = values.pcapng ?? values.pcap;
  if (file === undefined && policy.targets.length === 0 && !listen && outDir === undefined) {
    throw new UsageError(
      "give at least one output: --pcap FILE, --pcapng FILE, --vxlan, --geneve, --pcap-over-ip or --out-dir " +
        "(or a --policy with targets)",
    );
  }
  return { values, policy, file, listen, waitForClients, slow, outDir, outFormat, rotateBytes, rotateNs };
}

/** The one capture file of --pcap / --pcapng. With keys it is as sensitive as the key log: created 0600. */
function captureFile(path: string, format: "pcap" | "pcapng", embedKeys: boolean) {
  return format === "pcapng"
    ? createCaptureFileOutput({ path, format, embedKeys, userApplication: "cloudtap stitch" })
    : createCaptureFileOutput({ path, format, resolution: "nanosecond" });
}

/** Opens the planned outputs (closing what was opened if one fails). */
async function openOutputs(
  plan: OutputPlan,
  embedKeys: boolean,
  mtu: number,
  signal: AbortSignal,
): Promise<OutputWiring> {
  const { values, policy, file, listen, waitForClients, slow, outDir, outFormat, rotateBytes, rotateNs } =
    plan;
  const outputs: EgressOutput[] = [];
  let remapLog: WriteStream | undefined;
  let pcapOverIp: PcapOverIpServer | undefined;
  let encapsulationBytes = 0;
  try {
    if (file !== undefined) {
      outputs.push(captureFile(file, values.pcapng !== undefined ? "pcapng" : "pcap", embedKeys));
    }
    if (outDir !== undefined) {
      outputs.push(
        createRotatingFileOutput({
          dir: outDir,
          format: outFormat,
          prefix: values["out-prefix"],
          embedKeys,
          ...(rotateBytes === undefined ? {} : { rotateBytes }),
          ...(rotateNs === undefined ? {} : { rotateNs }),
          ...(values.upload === undefined ? {} : { upload: { store: openStore(values.upload) } }),
          ...(outFormat === "pcap" ? { resolution: "nanosecond" as const } : {}),
        }),
      );
    }
    if (listen) {
      pcapOverIp = await createPcapOverIpServer({ ...listen, slowClient: slow });
      outputs.push(pcapOverIp);
    }
    if (policy.targets.length > 0) {
      signal.throwIfAborted();
      const resolved = await resolvePolicyAddresses(policy);
      encapsulationBytes = encapsulationBytesFor(resolved.targets, mtu);
      if (mtu - encapsulationBytes < 576) {
        throw new UsageError(
          `the tunnels need ${encapsulationBytes} bytes of a ${mtu}-byte link MTU: raise --mtu or the targets' mtu`,
        );
      }
      const transport = await createUdpTransport({ targets: resolved.targets });
      const log =
        values["remap-log"] === undefined
          ? undefined
          : createWriteStream(values["remap-log"], { mode: 0o600 });
      remapLog = log;
      outputs.push(
        createTunnelOutput({
          policy: resolved,
          transport,
          ...(log ? { onMapping: (m) => void log.write(`${JSON.stringify(m)}\n`) } : {}),
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    remapLog?.destroy();
    throw err;
  }
  return {
    egress: createEgress(outputs),
    file,
    encapsulationBytes,
    pcapOverIp,
    waitForClients,
    async closeRemapLog() {
      if (!remapLog) return;
      remapLog.end();
      await once(remapLog, "close");
    },
  };
}

/** Summary lines of one output's report. */
function describeOutput(o: Readonly<Record<string, unknown>>): string[] {
  const n = (k: string) => Number(o[k] ?? 0);
  switch (o["kind"]) {
    case "tunnel": {
      const lines = (o["targets"] as Record<string, unknown>[]).map((t) => {
        const errors = Object.entries(t["sendErrors"] as Record<string, number>);
        const vni = t["vni"] as { original: number; cleartext: number };
        return (
          `egress:     ${t["name"]} (vni ${vni.original}/${vni.cleartext}): ${t["datagramsSent"]} of ${t["frames"]} frames sent` +
          `${errors.length ? `, refused ${errors.map(([c, k]) => `${c} ${k}`).join(", ")}` : ""}` +
          `, truncated ${t["truncated"]}, dropped ${Number(t["oversizeDropped"]) + Number(t["queueDropped"]) + Number(t["rateLimitDropped"])}`
        );
      });
      const remap = o["remap"] as Record<string, number> | undefined;
      if (remap) {
        lines.push(
          `remap:      ${remap["clientMappings"]} client and ${remap["serverMappings"]} server addresses mapped; ${remap["flowsExhausted"]} flows not exported (range full)`,
        );
      }
      if (n("flowsDroppedByPolicy"))
        lines.push(`policy:     ${n("flowsDroppedByPolicy")} flows not exported by rule`);
      return lines;
    }
    case "rotating":
      return [
        `egress:     ${n("filesClosed")} ${o["format"]} files in ${o["dir"]}, ${n("packets")} packets` +
          `${o["upload"] ? `, uploaded ${(o["upload"] as Record<string, unknown>)["uploaded"]} (failed ${(o["upload"] as Record<string, unknown>)["failures"]})` : ""}`,
      ];
    case "pcap-over-ip":
      return [
        `egress:     ${o["name"]}: ${n("packets")} packets, ${n("clientsAccepted")} clients, ` +
          `${n("droppedPackets")} packets dropped for slow clients, ${n("packetsWithoutClients")} with no client`,
      ];
    default:
      return [`egress:     ${o["name"]}: ${n("packets")} packets`];
  }
}

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
