import { createReadStream, open } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { Socket } from "node:net";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { ingestCapture } from "@cloudtap/ingest";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { createProgressLine } from "../progress.js";
import { openDataAndKeyStores, STORE_CREDENTIAL_OPTIONS, STORE_HELP } from "../store-flags.js";
import { formatBytes, parseAttributes, parseSize, toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const ingestCommand: Command = {
  name: "ingest",
  summary: CommandSummary.ingest,
  usage: `cloudtap ingest --pcap <file> [--keylog <file>] --out <store> [--keys-out <store>]
                [--credentials FILE] [--keys-credentials FILE]
                [--prefix P] [--tapper-id ID] [--blob-size 8MiB] [--gzip] [--attr key=value ...] [--json] [--quiet]

  TCP connections are reassembled per direction (retransmissions, reordering, overlaps: first seen wins);
  SYN/FIN/RST become open and close records; UDP becomes datagram records; other protocols are counted and
  skipped. TLS keys from --keylog and from pcapng Decryption Secrets Blocks go to <keys-out>/keys/ (default:
  the data store). --attr puts identity attributes (user, tenant, app, ...) on every connection.
  On a terminal, a progress line on stderr (bytes of the capture read, rate, time left); --quiet: none.
  Examples: --out s3://tap-data/lab --credentials aws.json; --out gs://tap-data/lab --credentials sa.json;
  --out azblob://acct/netskope/lab --credentials azure.json.
${STORE_HELP}`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        pcap: { type: "string" },
        keylog: { type: "string" },
        out: { type: "string" },
        "keys-out": { type: "string" },
        ...STORE_CREDENTIAL_OPTIONS,
        prefix: { type: "string", default: "" },
        "tapper-id": { type: "string", default: "ingest" },
        "blob-size": { type: "string" },
        gzip: { type: "boolean", default: false },
        attr: { type: "string", multiple: true, default: [] },
        json: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
      },
    });
    if (!values.pcap) throw new UsageError("--pcap is required");
    if (!values.out) throw new UsageError("--out is required");
    const { data: dataStore, keys: keyStore } = openDataAndKeyStores(
      { data: values.out, keys: values["keys-out"], dataFlag: "--out", keysFlag: "--keys-out" },
      values,
      { readOnly: false },
    );
    const keyLog = values.keylog ? await readFile(values.keylog, "utf8") : undefined;
    const started = process.hrtime.bigint();
    const progress = createProgressLine(io.stderr, {
      unit: "bytes",
      totalBytes: (await stat(values.pcap)).size,
      quiet: values.quiet,
    });
    const summary = await ingestCapture({
      capture: counted(await openCapture(values.pcap, io.signal), (n) => progress.update({ bytes: n })),
      captureName: basename(values.pcap),
      ...(keyLog === undefined ? {} : { keyLog }),
      dataStore,
      keyStore,
      prefix: values.prefix,
      tapperId: values["tapper-id"],
      ...(values["blob-size"] ? { maxBlobBytes: parseSize("--blob-size", values["blob-size"]) } : {}),
      compression: values.gzip ? "gzip" : "none",
      attributes: parseAttributes("--attr", values.attr),
      signal: io.signal,
    }).finally(() => progress.done());
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (values.json) {
      io.stdout.write(`${toJson(summary)}\n`);
      return 0;
    }
    const skipped = Object.entries(summary.skipped).filter(([, n]) => n > 0);
    const t = summary.tcp;
    io.stdout.write(
      [
        `ingested ${summary.captureName}: ${summary.packets} packets (${formatBytes(summary.capturedBytes)}) in ${seconds.toFixed(2)} s`,
        `connections: tcp ${summary.connections.tcp} (mid-stream ${summary.connections.midstream}), udp ${summary.connections.udp}`,
        `payload:     tcp ${formatBytes(summary.payloadBytes.tcp)}, udp ${formatBytes(summary.payloadBytes.udp)}`,
        `tcp:         duplicate ${t.duplicateBytes} B, gaps ${t.gapBytes} B, buffer overflows ${t.bufferOverflows}, truncated segments ${t.truncatedSegments}, after close ${t.afterCloseSegments} segments (${t.afterCloseBytes} B)`,
        `skipped:     ${skipped.length ? skipped.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`,
        `wrote:       ${summary.blobs.length} blob(s) to ${dataStore.url}, ${summary.keyLogs.length} key log(s) to ${keyStore.url}`,
        `problems:    ${summary.problems.length ? summary.problems.map((p) => p.kind).join(", ") : "none"}`,
        ...summary.problems.map((p) => `  ${p.where}: ${p.kind}: ${p.message}`),
      ].join("\n") + "\n",
    );
    return 0;
  },
};

/** The capture's chunks as they pass, with the bytes so far (for the progress line). */
/**
 * The capture's bytes. A pipe (`tcpdump -w -` into a FIFO, /dev/stdin) is read as a socket, not with the
 * file reads of the thread pool: a read there that waits for data nobody writes cannot be cancelled, and
 * SIGTERM must end the run at once. The signal ends the open (a pipe waits for its writer) and the read.
 */
async function openCapture(path: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
  if (!(await stat(path)).isFIFO()) return createReadStream(path, { highWaterMark: 1 << 20, signal });
  signal.throwIfAborted();
  const aborted = new Promise<never>((_, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
  );
  aborted.catch(() => {});
  // A plain descriptor (not a FileHandle, which would close it when collected): the socket owns it.
  const opening = new Promise<number>((resolve, reject) =>
    open(path, "r", (err, fd) => (err ? reject(err) : resolve(fd))),
  );
  const fd = await Promise.race([opening, aborted]);
  const socket = new Socket({ fd, readable: true, writable: false });
  signal.addEventListener("abort", () => socket.destroy(signal.reason as Error), { once: true });
  return socket;
}

async function* counted(
  source: AsyncIterable<Uint8Array>,
  onBytes: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    onBytes(bytes);
    yield chunk;
  }
}
