/**
 * What a stitch run did, as a type: counters of the job (blobs, records, problems), the stitcher (flows,
 * packets, TLS outcomes), the flow table (gaps, duplicates, caps) and the outputs. The CLI prints it (as
 * lines or JSON), the worker threads send their shares of it as plain data, and the mesh's status RPC
 * serves the same shape. `formatStitchRunReport` is its formatter, as `formatInventory` is inspect's.
 */
import type { BlobProblem } from "@cloudtap/fetch";
import type { FlowTableStats } from "@cloudtap/flow";
import type { StitchJobReport } from "./stitch-job.js";
import type { Stitcher } from "./stitcher.js";
import type { TlsConnectionProblem, Variant } from "./tls-variant.js";

/** The stitcher's counters as plain data (what a worker thread or a service instance reports). */
export interface StitcherCounters {
  readonly flowsTcp: number;
  readonly flowsUdp: number;
  readonly flowsFiltered: number;
  readonly flowsWithoutOpen: number;
  readonly packets: number;
  /** UDP datagrams too large for one IP packet: not written. */
  readonly oversizedDatagrams: number;
  readonly tls: {
    readonly outcomes: Readonly<Record<string, number>>;
    readonly unsupportedSuites: Readonly<Record<string, number>>;
    readonly cleartextFlows: number;
    readonly waitedForKeys: number;
    readonly cleartextBytes: readonly [number, number];
    readonly keysEmbedded: number;
    /** Connections whose keys did not authenticate: their keys were not embedded. */
    readonly keysNotEmbedded?: number;
    /** Connections where a candidate secret set (a client random logged twice) failed. */
    readonly candidateRejections?: number;
    /** The connections that did not decrypt or had candidates fail, by id and flow (a capped list). */
    readonly connections?: readonly TlsConnectionProblem[];
    /** Connections beyond the list. */
    readonly connectionsNotListed?: number;
  };
  /**
   * The time order of the output: frames through it, frames written out of time order because they came
   * later than the window (`lateFrames`), frames released early at its byte cap (`capReleases`), and the most
   * frame bytes it held at once (`peakHeldBytes`; with worker threads, the sum of each worker's peak).
   */
  readonly timeOrder: {
    readonly frames: number;
    readonly lateFrames: number;
    readonly capReleases: number;
    readonly peakHeldBytes: number;
  };
}

/** The flow table's counters as plain data. */
export type FlowTableCounters = { readonly [K in keyof FlowTableStats]: FlowTableStats[K] };

export function stitcherCountersOf(stitcher: Stitcher): StitcherCounters {
  const s = stitcher.stats;
  return {
    flowsTcp: s.flowsTcp,
    flowsUdp: s.flowsUdp,
    flowsFiltered: s.flowsFiltered,
    flowsWithoutOpen: s.flowsWithoutOpen,
    packets: s.packets,
    oversizedDatagrams: s.udp.oversizedDatagrams,
    tls: {
      outcomes: { ...s.tls.outcomes },
      unsupportedSuites: { ...s.tls.unsupportedSuites },
      cleartextFlows: s.tls.cleartextFlows,
      waitedForKeys: s.tls.waitedForKeys,
      cleartextBytes: [s.tls.cleartextBytes[0], s.tls.cleartextBytes[1]],
      keysEmbedded: s.tls.keysEmbedded,
      keysNotEmbedded: s.tls.keysNotEmbedded,
      candidateRejections: s.tls.candidateRejections,
      connections: s.tls.connections.map((c) => ({ ...c })),
      connectionsNotListed: s.tls.connectionsNotListed,
    },
    timeOrder: {
      frames: s.timeOrder.frames,
      lateFrames: s.timeOrder.lateFrames,
      capReleases: s.timeOrder.capReleases,
      peakHeldBytes: s.timeOrder.peakHeldBytes,
    },
  };
}

export function flowTableCountersOf(stitcher: Stitcher): FlowTableCounters {
  const t = stitcher.table.stats;
  return { ...t, completed: { ...t.completed } };
}

/**
 * Sums plain counters field by field (numbers added, arrays of numbers element-wise, other arrays (lists of
 * named things) concatenated, objects recursively).
 */
export function sumCounters<T extends object>(parts: readonly T[]): T {
  const into: Record<string, unknown> = {};
  for (const part of parts) addInto(into, part);
  return into as T;
}

function addInto(into: Record<string, unknown>, from: object): void {
  for (const [k, v] of Object.entries(from)) {
    const cur = into[k];
    if (typeof v === "number") into[k] = (typeof cur === "number" ? cur : 0) + v;
    else if (Array.isArray(v) && v.some((x) => typeof x === "object" && x !== null)) {
      into[k] = [...(Array.isArray(cur) ? cur : []), ...v];
    } else if (Array.isArray(v)) {
      const arr = Array.isArray(cur) ? (cur as number[]) : [];
      v.forEach((x, i) => {
        if (typeof x === "number") arr[i] = (arr[i] ?? 0) + x;
      });
      into[k] = arr;
    } else if (typeof v === "object" && v !== null) {
      const sub = typeof cur === "object" && cur !== null ? (cur as Record<string, unknown>) : {};
      addInto(sub, v as object);
      into[k] = sub;
    }
  }
}

/** An output's own report: a name, a kind, and its counters (see @cloudtap/egress `OutputReport`). */
export type OutputCounters = { readonly name: string; readonly kind: string } & Readonly<
  Record<string, unknown>
>;

export interface KeyLogCounters {
  readonly objects: number;
  /** Secrets added (lines that parsed, less exact duplicates). */
  readonly lines: number;
  /** Every line skipped (malformed or of an unknown label), however many. */
  readonly malformed: number;
  /** Secrets for a client random and label that already had another value: kept as a second candidate. */
  readonly conflicts?: number;
}

export interface StitchRunInput {
  /** What the run wrote to, for people ("out.pcapng", "vxlan:10.0.0.2:4789, pcapng:x"). */
  readonly output: string;
  readonly outputs: readonly OutputCounters[];
  readonly encapsulationBytes: number;
  readonly seconds: number;
  readonly workers: number;
  readonly job: StitchJobReport;
  readonly stitcher: StitcherCounters;
  readonly table: FlowTableCounters;
  readonly keys: KeyLogCounters;
  /** Key logs that could not be read (they are problems of the run too). */
  readonly keyLogProblems: readonly BlobProblem[];
  readonly variant: Variant;
  /** Which AEAD record opener ran ("native" or why not). */
  readonly aeadOpener: string;
}

/** Where a problem of the run as a whole (not of one object) is reported. */
export const RUN_PROBLEM_WHERE = "(run)";

/** TLS outcomes that lost decrypted content: each is a problem of the run. */
const LOSSY_TLS_OUTCOMES: Readonly<Record<string, string>> = {
  "integrity-failure": "did not decrypt with the keys given (wrong keys)",
  "no-keys": "had no keys",
  "buffer-overflow": "passed the key-wait buffer cap",
  malformed: "had malformed TLS records",
  "internal-error": "failed inside the decrypter",
};

/**
 * What the counters say was lost, as problems (the report never says "none" when something was): records
 * after their flow completed, bytes and flows dropped at caps, conn-opens of a reused connection id,
 * datagrams that cannot be written, TLS connections that did not decrypt.
 */
export function counterProblems(s: StitcherCounters, t: FlowTableCounters): BlobProblem[] {
  const out: BlobProblem[] = [];
  const add = (kind: string, message: string) => out.push({ blob: RUN_PROBLEM_WHERE, kind, message });
  if (t.conflictingOpens)
    add(
      "conflicting-open",
      `${t.conflictingOpens} second conn-open record(s) named another 5-tuple for a connection id already open (the id reused); ignored, their bytes were stitched into the first flow`,
    );
  if (t.lateRecords)
    add("late-records", `${t.lateRecords} record(s) came after their connection had completed: not written`);
  if (t.droppedBytes) add("cap-dropped-bytes", `${t.droppedBytes} bytes dropped at a flow-table buffer cap`);
  if (t.droppedNewFlows)
    add("cap-dropped-flows", `${t.droppedNewFlows} new flow(s) dropped at the flow-table cap`);
  if (s.oversizedDatagrams)
    add(
      "oversized-datagram",
      `${s.oversizedDatagrams} UDP datagram(s) too large for one IP packet (above 65,507 payload bytes in IPv4): not written`,
    );
  // Older runs' counters (a worker of another version) may lack the time order.
  const late = s.timeOrder?.lateFrames ?? 0;
  if (late)
    add(
      "out-of-time-order",
      `${late} packet(s) were made after the time-order window had passed their time: written anyway, out of time order`,
    );
  // TLS: each connection that did not decrypt by id and flow, then what the list could not hold.
  const listed: Record<string, number> = {};
  for (const c of (s.tls.connections ?? []).slice(0, MAX_TLS_CONNECTIONS_REPORTED)) {
    const what = LOSSY_TLS_OUTCOMES[c.outcome] ?? TLS_CONNECTION_PROBLEMS[c.outcome] ?? c.outcome;
    const candidates = c.candidatesRejected
      ? `; ${c.candidatesRejected} candidate secret set(s) of its client random failed`
      : "";
    out.push({
      blob: `connection ${c.connId}`,
      kind: `tls-${c.outcome}`,
      message: `${c.flow}: ${what}${c.detail ? ` (${c.detail})` : ""}${candidates}`,
    });
    listed[c.outcome] = (listed[c.outcome] ?? 0) + 1;
  }
  const totals: Record<string, number> = {
    ...Object.fromEntries(Object.keys(LOSSY_TLS_OUTCOMES).map((k) => [k, s.tls.outcomes[k] ?? 0])),
    "keys-not-embedded": s.tls.keysNotEmbedded ?? 0,
  };
  for (const [kind, n] of Object.entries(totals)) {
    const rest = n - (listed[kind] ?? 0);
    const what = LOSSY_TLS_OUTCOMES[kind] ?? TLS_CONNECTION_PROBLEMS[kind] ?? kind;
    if (rest > 0) add(`tls-${kind}`, `${listed[kind] ? `and ${rest} more` : rest} TLS connection(s) ${what}`);
  }
  return out;
}

/** Connections named one by one in a run's problems (the rest are counted). */
export const MAX_TLS_CONNECTIONS_REPORTED = 100;

/** Per-connection TLS problems that are not a session outcome. */
const TLS_CONNECTION_PROBLEMS: Readonly<Record<string, string>> = {
  "keys-not-embedded":
    "had keys that did not decrypt it (wrong keys): not embedded in the capture's Decryption Secrets Blocks",
  "candidate-rejected":
    "decrypted with a later candidate: its client random was logged with other secrets too",
};

/** The run report in its JSON form (the shape `cloudtap stitch --json` prints). */
export function stitchRunReport(i: StitchRunInput) {
  const { job, stitcher: s, table: t, keys } = i;
  const problems = [...i.keyLogProblems, ...job.problems, ...counterProblems(s, t)];
  const problemCounts: Record<string, number> = {};
  for (const p of problems) problemCounts[p.kind] = (problemCounts[p.kind] ?? 0) + 1;
  return {
    output: i.output,
    outputs: i.outputs,
    encapsulationBytes: i.encapsulationBytes,
    seconds: i.seconds,
    workers: i.workers,
    blobs: job.blobs,
    blobBytes: job.blobBytes,
    records: job.records,
    payloadBytes: job.payloadBytes,
    outputBytes: job.outputBytes,
    flows: {
      tcp: s.flowsTcp,
      udp: s.flowsUdp,
      filtered: s.flowsFiltered,
      withoutOpen: s.flowsWithoutOpen,
      completed: t.completed,
    },
    packets: s.packets,
    timeOrder: s.timeOrder,
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
      conflictingKeyLogLines: keys.conflicts ?? 0,
      variant: i.variant,
      outcomes: s.tls.outcomes,
      unsupportedSuites: s.tls.unsupportedSuites,
      cleartextFlows: s.tls.cleartextFlows,
      cleartextBytes: { c2s: s.tls.cleartextBytes[0], s2c: s.tls.cleartextBytes[1] },
      keysEmbedded: s.tls.keysEmbedded,
      keysNotEmbedded: s.tls.keysNotEmbedded ?? 0,
      candidateRejections: s.tls.candidateRejections ?? 0,
      aeadOpener: i.aeadOpener,
    },
    unknownFrames: job.unknownFrames,
    problemCounts,
    problems,
  };
}

export type StitchRunReport = ReturnType<typeof stitchRunReport>;

export interface FormatOptions {
  /** Lines for one output's report (egress knows its kinds: @cloudtap/egress `describeOutputReport`). */
  readonly describeOutput: (output: OutputCounters) => readonly string[];
  readonly formatBytes: (bytes: number) => string;
  /** Problems listed one by one (default 10). */
  readonly maxProblems?: number;
}

/** The report as lines for a person. */
export function formatStitchRunReport(r: StitchRunReport, options: FormatOptions): string[] {
  const { formatBytes } = options;
  const kinds = Object.entries(r.problemCounts);
  const outcomes = Object.entries(r.tls.outcomes);
  return [
    `stitched ${r.blobs} blobs (${formatBytes(r.blobBytes)}) into ${r.output} in ${r.seconds.toFixed(2)} s (${(r.payloadBytes / 1e6 / Math.max(r.seconds, 1e-6)).toFixed(0)} MB/s of payload)${r.workers > 1 ? `, ${r.workers} worker threads` : ""}`,
    `flows:      tcp ${r.flows.tcp}, udp ${r.flows.udp}; filtered out ${r.flows.filtered}; without conn-open ${r.flows.withoutOpen}`,
    `packets:    ${r.packets} (${formatBytes(r.outputBytes)} written), payload ${formatBytes(r.payloadBytes)}`,
    `gaps:       ${r.gaps.count} (${r.gaps.bytes} bytes)`,
    `duplicates: ${r.duplicates.bytes} bytes (${r.duplicates.overlapMismatchBytes} differing), ${r.duplicates.datagrams} datagrams, ${r.duplicates.lateRecords} late records`,
    `tls:        ${r.tls.keyLogLines} key-log lines from ${r.tls.keyLogObjects} object(s)${r.tls.malformedKeyLogLines ? ` (${r.tls.malformedKeyLogLines} malformed lines skipped)` : ""}; ` +
      `variant ${r.tls.variant}; ${outcomes.map(([k, n]) => `${k} ${n}`).join(", ") || "no TLS decryption"}; ` +
      `${r.tls.cleartextFlows} cleartext flows; keys embedded for ${r.tls.keysEmbedded}` +
      `${r.tls.keysNotEmbedded ? ` (not for ${r.tls.keysNotEmbedded}: their keys did not decrypt)` : ""}`,
    ...r.outputs.flatMap((o) => options.describeOutput(o)),
    `problems:   ${kinds.length ? kinds.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`,
    ...r.problems.slice(0, options.maxProblems ?? 10).map((p) => `  ${p.blob}: ${p.kind}: ${p.message}`),
  ];
}
