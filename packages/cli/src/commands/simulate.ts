import { parseArgs } from "node:util";
import { DEFAULT_START_NS, MAX_START_NS, runSimulation, type SimulationFaults } from "@cloudtap/tapsim";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { openDataAndKeyStores, STORE_CREDENTIAL_OPTIONS, STORE_HELP } from "../store-flags.js";
import { parseTime } from "../time.js";
import { formatBytes, parseDuration, parseSize, toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

const FAULTS: Record<string, keyof SimulationFaults> = {
  "duplicate-blobs": "duplicateBlobs",
  shuffle: "shuffle",
  gap: "gap",
  "truncate-last": "truncateLast",
  "late-keys": "lateKeys",
};

export const simulateCommand: Command = {
  name: "simulate",
  summary: CommandSummary.simulate,
  usage: `cloudtap simulate --out <store> [--keys-out <store>] [--credentials FILE] [--keys-credentials FILE]
                  [--connections 200] [--seed 1] [--start 2025-03-14T09:00:00Z|now|TIME]
                  [--blob-size 4MiB] [--blob-age 5s] [--prefix P] [--gzip] [--concurrency 24]
                  [--fault duplicate-blobs|shuffle|gap|truncate-last|late-keys ...] [--json]

  Real TLS 1.3 (AES-128/256-GCM, ChaCha20-Poly1305) and TLS 1.2 (ECDHE AES-GCM, ChaCha20-Poly1305, CBC)
  servers and clients on 127.0.0.1, HTTP/1.1 with keep-alive, HTTP/2 by ALPN, plain HTTP and DNS over UDP.
  A relay taps every connection's bytes per direction into blobs rotated every --blob-size bytes or
  --blob-age of virtual time, with simulated users, subnets and servers. Key logs come from the TLS stacks.
  The manifest (<store>/manifest/<run>.json) lists every connection's 5-tuple, protocol, TLS version and
  suite, and the SHA-256 and length of each direction's raw and decrypted bytes. The same seed gives the
  same connections and manifest, except the fields it lists as not deterministic (TLS randomness).
  --start sets the virtual clock's first connection: "now" (the wall clock), an ISO 8601 date-time, Unix
  seconds, or a time relative to now ("-2h"). The default is a fixed date, so seeded outputs repeat byte for
  byte; another start moves every record, blob key and key-log key to it and mixes it into the connection
  ids, so runs of one seed at other starts land in the same store side by side (a simulator in a loop with
  --start now keeps landing new traffic for a continuous mesh).
  Examples: --out s3://tap-data/run1 --credentials aws.json --keys-out s3://tap-keys/run1 --keys-credentials
  aws-keys.json; --out gs://tap-data/run1 --credentials sa.json; --out azblob://acct/netskope/run1
  --credentials azure.json.
${STORE_HELP}`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: {
        out: { type: "string" },
        "keys-out": { type: "string" },
        ...STORE_CREDENTIAL_OPTIONS,
        connections: { type: "string", default: "200" },
        seed: { type: "string", default: "1" },
        start: { type: "string" },
        "blob-size": { type: "string" },
        "blob-age": { type: "string" },
        prefix: { type: "string", default: "" },
        gzip: { type: "boolean", default: false },
        concurrency: { type: "string" },
        fault: { type: "string", multiple: true, default: [] },
        json: { type: "boolean", default: false },
      },
    });
    if (!values.out) throw new UsageError("--out is required");
    const connections = Number(values.connections);
    if (!Number.isInteger(connections) || connections < 1)
      throw new UsageError("--connections must be a positive integer");
    const faults: { -readonly [K in keyof SimulationFaults]: boolean } = {};
    for (const f of values.fault.flatMap((x) => x.split(","))) {
      const key = FAULTS[f.trim()];
      if (!key) throw new UsageError(`unknown fault "${f}" (one of ${Object.keys(FAULTS).join(", ")})`);
      faults[key] = true;
    }
    const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
    if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
      throw new UsageError("--concurrency must be a positive integer");
    }
    const startNs = values.start === undefined ? DEFAULT_START_NS : parseStart(values.start);
    const { data: dataStore, keys: keyStore } = openDataAndKeyStores(
      { data: values.out, keys: values["keys-out"], dataFlag: "--out", keysFlag: "--keys-out" },
      values,
      { readOnly: false },
    );
    const tty = io.stderr.isTTY === true;
    const result = await runSimulation({
      dataStore,
      keyStore,
      connections,
      seed: values.seed,
      startNs,
      prefix: values.prefix,
      compression: values.gzip ? "gzip" : "none",
      faults,
      signal: io.signal,
      ...(values["blob-size"] ? { blobSize: parseSize("--blob-size", values["blob-size"]) } : {}),
      ...(values["blob-age"] ? { blobAgeNs: parseDuration("--blob-age", values["blob-age"]) } : {}),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(tty
        ? {
            onProgress: (p) =>
              io.stderr.write(
                `\r\x1b[K${p.completedConnections}/${p.totalConnections} connections, ${formatBytes(p.rawBytes)}`,
              ),
          }
        : {}),
    });
    if (tty) io.stderr.write("\r\x1b[K");
    const m = result.manifest;
    if (values.json) {
      io.stdout.write(
        `${toJson({ manifestKey: result.manifestKey, elapsedMs: result.elapsedMs, manifest: m })}\n`,
      );
      return 0;
    }
    const byProtocol = new Map<string, number>();
    const byTls = new Map<string, number>();
    let raw = 0;
    for (const c of m.connections) {
      byProtocol.set(c.protocol, (byProtocol.get(c.protocol) ?? 0) + 1);
      if (c.tls)
        byTls.set(`${c.tls.version} ${c.tls.suite}`, (byTls.get(`${c.tls.version} ${c.tls.suite}`) ?? 0) + 1);
      raw += c.c2s.raw.length + c.s2c.raw.length;
    }
    const list = (mp: Map<string, number>) => [...mp].map(([k, n]) => `${k} ${n}`).join(", ");
    const applied = Object.entries(m.faults)
      .filter(([k, v]) => k !== "requested" && v !== undefined && !(Array.isArray(v) && v.length === 0))
      .map(([k]) => k);
    io.stdout.write(
      [
        `simulated ${m.connections.length} connections (seed ${m.seed}) in ${(result.elapsedMs / 1000).toFixed(1)} s: ${formatBytes(raw)} tapped`,
        `protocols: ${list(byProtocol)}`,
        `tls:       ${list(byTls)}`,
        `blobs:     ${m.blobs.data.length} data blob(s) in ${dataStore.url}, ${m.blobs.keyLogs.length} key log(s) in ${keyStore.url}`,
        `clock:     first connection at ${new Date(Number(startNs / 1_000_000n)).toISOString()}${values.start === undefined ? " (the default start; --start moves it)" : ""}`,
        `faults:    ${applied.length ? applied.join(", ") : "none"}`,
        `manifest:  ${result.manifestKey}`,
      ].join("\n") + "\n",
    );
    return 0;
  },
};

/** --start: "now" is the wall clock; otherwise a time as --since takes it. */
function parseStart(text: string): bigint {
  const ns = text === "now" ? BigInt(Date.now()) * 1_000_000n : parseTime("--start", text);
  if (ns < 0n || ns > MAX_START_NS) throw new UsageError("--start must be between 1970 and 2262");
  return ns;
}
