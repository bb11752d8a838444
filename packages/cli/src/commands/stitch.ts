import { parseArgs } from "node:util";
import { type EgressSpec, isEgressError, SlowClientPolicy } from "@cloudtap/egress";
import { openEgress } from "@cloudtap/egress/node";
import { DEFAULT_FOLLOW_LATENESS_NS, listBlobs, readKeyLogs, sortBlobsByTime } from "@cloudtap/fetch";
import { createFlowFilter } from "@cloudtap/flow";
import {
  addKeyLogs,
  createStitcherFromSettings,
  flowTableCountersOf,
  runStitchJob,
  type StitcherSettings,
  type StitchJobReport,
  stitcherCountersOf,
  tlsNeeded,
  type Variant,
} from "@cloudtap/stitch";
import { defaultWorkerCount } from "@cloudtap/stitch-workers";
import { createKeyStore } from "@cloudtap/tls";
import type { Command, CommandIo } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { egressSpecFromFlags, OUTPUT_FLAG_OPTIONS, parseCleartextPorts } from "../output-flags.js";
import { createProgressLine } from "../progress.js";
import { writeStitchSummary } from "../stitch-summary.js";
import {
  openDataAndKeyStores,
  openStoreWithCredentials,
  readAheadFor,
  STITCH_STORE_OPTIONS,
  STORE_CREDENTIAL_OPTIONS,
} from "../store-flags.js";
import { requireExistingStore } from "../store-path.js";
import { parseTime } from "../time.js";
import { parseDuration } from "../units.js";
import { UsageError } from "../usage-error.js";
import { runFollow } from "./stitch-follow.js";
import { runParallel } from "./stitch-parallel.js";
import { STITCH_USAGE } from "./stitch-usage.js";

export const stitchCommand: Command = {
  name: "stitch",
  summary: CommandSummary.stitch,
  usage: STITCH_USAGE,
  async run(args, io) {
    // A cloud source's own thread (openStoreOnThread) ends with the run, however the run ends.
    const closers: (() => Promise<void>)[] = [];
    try {
      return await stitch(args, io, closers);
    } finally {
      await Promise.all(closers.map((close) => close()));
    }
  },
};

async function stitch(args: string[], io: CommandIo, closers: (() => Promise<void>)[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      source: { type: "string" },
      keys: { type: "string" },
      ...STORE_CREDENTIAL_OPTIONS,
      ...STITCH_STORE_OPTIONS,
      prefix: { type: "string", default: "" },
      since: { type: "string" },
      until: { type: "string" },
      mtu: { type: "string", default: "1500" },
      filter: { type: "string", multiple: true, default: [] },
      "on-corrupt": { type: "string", default: "resync" },
      "no-fin-on-timeout": { type: "boolean", default: false },
      variant: { type: "string", default: "original" },
      "no-embed-keys": { type: "boolean", default: false },
      "cleartext-port": { type: "string", multiple: true, default: [] },
      json: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      workers: { type: "string", default: "auto" },
      follow: { type: "boolean", default: false },
      poll: { type: "string", default: "5s" },
      lateness: { type: "string" },
      state: { type: "string" },
      ...OUTPUT_FLAG_OPTIONS,
    },
  });
  if (!values.source) throw new UsageError("--source is required");
  if (values["upload-credentials"] !== undefined && values.upload === undefined)
    throw new UsageError("--upload-credentials goes with --upload");
  const readAhead = readAheadFor(values.source, values["read-ahead"]);
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
  const outputs = egressSpecFromFlags(values, {
    mtu,
    embedKeys: false,
    slowClient: SlowClientPolicy.Block,
  });
  if (!values.follow && (values.state !== undefined || values.lateness !== undefined))
    throw new UsageError("--state and --lateness go with --follow");
  if (values.follow && (untilNs !== undefined || outputs.rotating))
    throw new UsageError("--until and --out-dir do not go with --follow");
  const pollNs = parseDuration("--poll", values.poll);
  const latenessNs =
    values.lateness === undefined ? DEFAULT_FOLLOW_LATENESS_NS : parseDuration("--lateness", values.lateness);
  if (pollNs < 1_000_000n) throw new UsageError("--poll is at least 1ms");
  requireExistingStore("--source", values.source);
  if (values.keys) requireExistingStore("--keys", values.keys);
  const {
    data: store,
    keys: keyObjects,
    close,
  } = openDataAndKeyStores(
    { data: values.source, keys: values.keys, dataFlag: "--source", keysFlag: "--keys" },
    values,
    { readOnly: true, thread: true },
  );
  closers.push(close);
  // One-shot runs keep every key of the window: no expiry within the run, a generous byte cap.
  const keyStore = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER, maxBytes: 1024 * 1024 * 1024 });
  const started = process.hrtime.bigint();
  const summaryContext = { io, json: values.json, started, variant };

  /** The stitcher's settings from the flags, with TLS (and key embedding) when the run needs it. */
  const stitcherSettings = (tls: boolean, embedKeys: boolean): StitcherSettings => ({
    mtu,
    filter: values.filter,
    finOnTimeout: !values["no-fin-on-timeout"],
    ...(tls ? { tls: { variant, cleartextPorts, embedKeys } } : {}),
  });

  if (values.follow) {
    // Keys land while the run goes on: TLS is set up whether or not any are there yet.
    const spec: EgressSpec = {
      ...outputs,
      embedKeys: !values["no-embed-keys"],
      decryptedContent: variant !== "original",
    };
    return runFollow({
      io,
      store,
      keyStore: keyObjects,
      prefix: values.prefix,
      ...(sinceNs === undefined ? {} : { sinceNs }),
      pollMs: Number(pollNs / 1_000_000n),
      latenessNs,
      ...(values.state === undefined ? {} : { statePath: values.state }),
      spec,
      settings: stitcherSettings(tlsNeeded(variant, true) || spec.embedKeys, spec.embedKeys),
      tlsKeys: keyStore,
      onCorruption,
      quiet: values.quiet,
      summary: summaryContext,
    });
  }

  const keyLogs = await readKeyLogs(keyObjects, window);
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
  const settings = stitcherSettings(tlsNeeded(variant, keys.lines > 0), spec.embedKeys);
  const files = spec.files ?? [];
  const oneFile =
    files.length === 1 && !spec.rotating && !spec.pcapOverIp && (spec.policy?.targets?.length ?? 0) === 0;
  const summary = { ...summaryContext, keys, keyLogProblems: [...keyLogs.problems, ...keyLineProblems] };
  const progress = createProgressLine(io.stderr, {
    unit: "blobs",
    totalItems: blobs.length,
    totalBytes,
    quiet: values.quiet,
  });

  // Workers need resync: with skip-rest a blob stops at damage that only one worker sees.
  if (workers > 1 && oneFile && onCorruption === "resync") {
    createFlowFilter(values.filter); // a bad rule fails here, as in the one-thread run
    return runParallel({
      workers,
      blobs,
      keyLogs: keyLogs.keyLogs.map((k) => k.text),
      file: files[0]!,
      spec,
      settings,
      progress,
      summary,
      signal: io.signal,
    });
  }

  const opened = await openEgress(spec, {
    openUploadStore: (url) =>
      openStoreWithCredentials("--upload", url, values["upload-credentials"], { readOnly: false }),
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
      ...readAhead,
      ...(progress.active
        ? {
            onProgress: (p) =>
              progress.update({
                items: p.blobs,
                bytes: p.blobBytes,
                detail: `${stitcher.stats.flowsTcp + stitcher.stats.flowsUdp} flows`,
              }),
          }
        : {}),
    });
    await opened.close();
  } catch (err) {
    await opened.abort();
    throw err;
  } finally {
    progress.done();
  }
  const reports = egress.report().outputs;
  return writeStitchSummary(summary, {
    output:
      files.length === 1 && reports.length === 1 ? files[0]!.path : reports.map((o) => o.name).join(", "),
    outputs: reports,
    encapsulationBytes,
    workers: 1,
    job,
    stitcher: stitcherCountersOf(stitcher),
    table: flowTableCountersOf(stitcher),
  });
}

function parseWorkers(v: string): number {
  if (v === "auto") return defaultWorkerCount();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new UsageError("--workers is auto or an integer in 1..64");
  return n;
}
