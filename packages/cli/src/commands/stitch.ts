import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { DecompressionStream, ReadableStream } from "node:stream/web";
import { parseArgs } from "node:util";
import { openStore } from "@cloudtap/object-store";
import {
  type CaptureEncoder,
  createPcapEncoder,
  createPcapngEncoder,
  type PcapngEncoder,
} from "@cloudtap/pcap";
import { listBlobs, runStitchJob, Stitcher, sortBlobsByTime, type Variant } from "@cloudtap/stitch";
import { keysPrefix } from "@cloudtap/tap-format";
import { createKeyStore } from "@cloudtap/tls";
import type { Command } from "../command.js";
import { parseTime } from "../time.js";
import { formatBytes, toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

const LINKTYPE_ETHERNET = 1;

export const stitchCommand: Command = {
  name: "stitch",
  summary: "stitch the connections of a store back into packets: a pcap or pcapng file",
  usage: `cloudtap stitch --source <store> (--pcap FILE | --pcapng FILE) [--keys <store>] [--prefix P]
                [--variant original|cleartext|both] [--no-embed-keys] [--cleartext-port TLS:CLEAR ...]
                [--since T] [--until T] [--mtu 1500] [--filter RULE ...] [--on-corrupt resync|skip-rest]
                [--no-fin-on-timeout] [--json]

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
      },
    });
    if (!values.source) throw new UsageError("--source is required");
    if (!values.pcap === !values.pcapng)
      throw new UsageError("give exactly one of --pcap FILE or --pcapng FILE");
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

    const file = (values.pcapng ?? values.pcap)!;
    const encoder: CaptureEncoder = values.pcapng
      ? createPcapngEncoder({ linkType: LINKTYPE_ETHERNET, userApplication: "cloudtap stitch" })
      : createPcapEncoder({ linkType: LINKTYPE_ETHERNET, resolution: "nanosecond" });
    const embed = values.pcapng !== undefined && !values["no-embed-keys"] && keys.lines > 0;
    const stitcher = new Stitcher({
      sink: encoder,
      mtu,
      filter: values.filter,
      finOnTimeout: !values["no-fin-on-timeout"],
      ...(keys.lines > 0 || variant !== "original"
        ? {
            tls: {
              keys: keys.store,
              variant,
              cleartextPorts,
              ...(embed && "writeTlsKeyLog" in encoder
                ? { embedKeys: (text: string) => (encoder as PcapngEncoder).writeTlsKeyLog(text) }
                : {}),
            },
          }
        : {}),
    });
    const partial = `${file}.partial`;
    // A capture that embeds keys is as sensitive as the key log: owner-only.
    // A deep write buffer lets file writes overlap with stitching instead of waiting on each chunk.
    const out = createWriteStream(partial, { mode: embed ? 0o600 : 0o644, highWaterMark: 8 * 1024 * 1024 });
    const sink = {
      write: async (chunk: Uint8Array) => {
        // The encoder reuses the chunk's buffer once the file has it.
        if (!out.write(chunk, () => encoder.recycle(chunk))) await once(out, "drain");
      },
    };
    const started = process.hrtime.bigint();
    const tty = io.stderr.isTTY === true;
    let lastDraw = 0;
    let report: Awaited<ReturnType<typeof runStitchJob>>;
    try {
      report = await runStitchJob({
        blobs: (async function* () {
          yield* blobs;
        })(),
        stitcher,
        output: encoder,
        sink,
        onCorruption,
        signal: io.signal,
        ...(tty
          ? {
              onProgress: (p) => {
                const now = Date.now();
                if (now - lastDraw < 200 && p.blobs < blobs.length) return;
                lastDraw = now;
                const s = Number(process.hrtime.bigint() - started) / 1e9;
                const rate = p.blobBytes / Math.max(s, 1e-3);
                const eta = rate > 0 ? (totalBytes - p.blobBytes) / rate : 0;
                io.stderr.write(
                  `\r\x1b[K${p.blobs}/${blobs.length} blobs, ${formatBytes(p.blobBytes)}/${formatBytes(totalBytes)}, ` +
                    `${stitcher.stats.flowsTcp + stitcher.stats.flowsUdp} flows, ${(rate / 1e6).toFixed(0)} MB/s, ETA ${eta.toFixed(0)} s`,
                );
              },
            }
          : {}),
      });
      out.end();
      await once(out, "finish");
      await rename(partial, file);
    } catch (err) {
      out.destroy();
      await rm(partial, { force: true });
      throw err;
    } finally {
      if (tty) io.stderr.write("\r\x1b[K");
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const s = stitcher.stats;
    const t = stitcher.table.stats;
    const summary = {
      output: file,
      seconds,
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
      },
      unknownFrames: report.unknownFrames,
      problemCounts: report.problemCounts,
      problems: report.problems,
    };
    if (values.json) {
      io.stdout.write(`${toJson(summary)}\n`);
      return 0;
    }
    const kinds = Object.entries(report.problemCounts);
    const lines = [
      `stitched ${report.blobs} blobs (${formatBytes(report.blobBytes)}) into ${file} in ${seconds.toFixed(2)} s (${(report.payloadBytes / 1e6 / Math.max(seconds, 1e-6)).toFixed(0)} MB/s of payload)`,
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
      `problems:   ${kinds.length ? kinds.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`,
      ...report.problems.slice(0, 10).map((p) => `  ${p.blob}: ${p.kind}: ${p.message}`),
    ];
    io.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  },
};

/** Loads every key log under <prefix>/keys/ of a store (plain or .gz) into a key store. */
async function loadKeys(
  store: ReturnType<typeof openStore>,
  prefix: string,
  signal: AbortSignal,
): Promise<{ store: ReturnType<typeof createKeyStore>; objects: number; lines: number; malformed: number }> {
  // One-shot runs keep every key of the window: no expiry within the run, a generous byte cap.
  const keyStore = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER, maxBytes: 1024 * 1024 * 1024 });
  let objects = 0;
  let lines = 0;
  let malformed = 0;
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
    const r = keyStore.addKeyLog(new TextDecoder().decode(bytes), 0);
    objects++;
    lines += r.added;
    malformed += r.skippedLines.length;
  }
  return { store: keyStore, objects, lines, malformed };
}
