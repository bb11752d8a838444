import { mkdirSync, mkdtempSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SlowClientPolicy } from "@cloudtap/egress";
import { LocalMesh, type LocalMeshPlan, type MeshInstance } from "@cloudtap/local-mesh";
import { DEFAULT_MTU } from "@cloudtap/stitch";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { egressSpecFromFlags, meshOutputsOf, OUTPUT_FLAG_OPTIONS } from "../output-flags.js";
import { keysCredentialsFor, STORE_CREDENTIAL_OPTIONS, STORE_HELP } from "../store-flags.js";
import { parseTime } from "../time.js";
import { toJson } from "../units.js";
import { UsageError } from "../usage-error.js";

export const upCommand: Command = {
  name: "up",
  summary: CommandSummary.up,
  usage: `cloudtap up --source <store> OUTPUT... [--keys <store>] [--credentials FILE] [--keys-credentials FILE] [--prefix P] [--once] [--since T] [--until T]
                [--fetchers 1] [--stitchers 1] [--shards 8] [--elastic-shards] [--variant original|cleartext|both] [--filter RULE ...]
                [--mtu 1500] [--no-keys] [--no-embed-keys] [--state-dir DIR] [--nats URL] [--json]
  OUTPUT, at least one (given to mirror-egress, the only service that reaches the NDR):
    --pcap FILE | --pcapng FILE ...   capture files
    --vxlan HOST[:PORT][,vni=N]... | --geneve ...   tunnels (as cloudtap stitch)
    --policy FILE [--remap-log FILE]  export policy
    --pcap-over-ip [ADDR:]PORT [--pcap-over-ip-slow drop|disconnect]   (default drop)
    --out-dir DIR [--out-format pcap|pcapng]   rotating capture files
  The output flags are parsed as cloudtap stitch parses them; the policy, with the --vxlan/--geneve
  targets added, is written to egress-policy.json in the state folder for mirror-egress.

  Starts a nats-server with JetStream (or uses --nats), a private CA with one certificate per service
  identity (mutual TLS between the services), then mirror-egress, the key-broker, the stitchers (the
  --shards split between them), and the fetchers, each a separate process configured by its environment.
  A service instance that dies is restarted (logged), after 250 ms doubling up to 5 s. An instance that
  exits because it cannot open its store (a missing directory, refused credentials, a missing bucket:
  exit status 3) or has a bad configuration (status 2) will not be cured by a restart: with --once the
  run stops at once and exits 1 naming the instance and the store; continuous, it is retried from 1 s
  doubling up to once a minute (the store may be fixed meanwhile), and cloudtap status shows it DOWN with
  that reason and the next retry. Continuous by default: the fetchers poll the store.
  --once drains the window and exits 0 when every blob is done and every sink flushed. Ctrl-C stops
  everything in order: fetchers, key-broker, stitchers, mirror-egress (sinks flushed), nats-server.
  The state folder (default: a new temporary folder) holds mesh.json, the logs, the PKI and JetStream's
  files; \`cloudtap status --state-dir DIR\` reads the running mesh's counters.
  --no-keys runs no key-broker: no decryption, no keys embedded.
  --elastic-shards: the stitchers share the shards by lease in NATS KV (STITCHER_SHARDS=auto) instead of
  fixed ranges: a stitcher started later with the same settings takes its share, one that stops gives its
  shards back (docs/mesh.md, "Scale-out"). Replays need fixed ranges.
  Examples: --source s3://tap-data --credentials aws.json; --source gs://tap-data --credentials sa.json;
  --source azblob://acct/netskope --credentials azure.json (the fetchers and the key-broker get the files).
${STORE_HELP}`,
  async run(args, io) {
    const { values } = parseArgs({
      args,
      options: {
        source: { type: "string" },
        keys: { type: "string" },
        ...STORE_CREDENTIAL_OPTIONS,
        prefix: { type: "string" },
        once: { type: "boolean", default: false },
        since: { type: "string" },
        until: { type: "string" },
        fetchers: { type: "string", default: "1" },
        stitchers: { type: "string", default: "1" },
        "elastic-shards": { type: "boolean", default: false },
        shards: { type: "string", default: "8" },
        variant: { type: "string", default: "original" },
        filter: { type: "string", multiple: true, default: [] },
        mtu: { type: "string" },
        "no-keys": { type: "boolean", default: false },
        "no-embed-keys": { type: "boolean", default: false },
        "state-dir": { type: "string" },
        nats: { type: "string" },
        json: { type: "boolean", default: false },
        ...OUTPUT_FLAG_OPTIONS,
      },
    });
    if (!values.source) throw new UsageError("--source is required");
    const count = (flag: string, text: string, max: number) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1 || n > max)
        throw new UsageError(`${flag} is an integer in 1..${max}`);
      return n;
    };
    const variant = values.variant;
    if (variant !== "original" && variant !== "cleartext" && variant !== "both")
      throw new UsageError("--variant is original, cleartext or both");
    if (values["no-keys"] && variant !== "original")
      throw new UsageError("--no-keys decrypts nothing: it goes with --variant original");
    const shardCount = count("--shards", values.shards, 4096);
    const stitchers = count("--stitchers", values.stitchers, 64);
    if (stitchers > shardCount) throw new UsageError("--stitchers cannot exceed --shards");
    const spec = egressSpecFromFlags(values, {
      mtu: values.mtu ? count("--mtu", values.mtu, 65535) : DEFAULT_MTU,
      embedKeys: !values["no-embed-keys"] && !values["no-keys"],
      slowClient: SlowClientPolicy.Drop,
    });
    const stateDir = values["state-dir"] ?? mkdtempSync(join(tmpdir(), "cloudtap-mesh-"));
    mkdirSync(stateDir, { recursive: true });
    const outputs = meshOutputsOf(spec, join(stateDir, "egress-policy.json"));
    const plan: LocalMeshPlan = {
      stateDir,
      source: values.source,
      ...(values.keys ? { keys: values.keys } : {}),
      ...(values.credentials ? { sourceCredentials: values.credentials } : {}),
      ...(() => {
        // The same rule as stitch: --keys-credentials, else --credentials for a key store of the same scheme.
        const file = values.keys
          ? keysCredentialsFor(values.source, values.keys, values)
          : values["keys-credentials"];
        return file ? { keysCredentials: file } : {};
      })(),
      ...(values.prefix ? { prefix: values.prefix } : {}),
      ...(values.since ? { sinceNs: parseTime("--since", values.since) } : {}),
      ...(values.until ? { untilNs: parseTime("--until", values.until) } : {}),
      once: values.once,
      fetchers: count("--fetchers", values.fetchers, 64),
      stitchers,
      shardCount,
      ...(values["elastic-shards"] ? { elasticShards: true } : {}),
      variant,
      keyBroker: !values["no-keys"],
      filter: values.filter,
      ...(values.mtu ? { mtu: count("--mtu", values.mtu, 65535) } : {}),
      outputs,
      ...(values.nats ? { natsUrl: values.nats } : {}),
    };
    const say = (line: string) => io.stderr.write(`${line}\n`);
    const mesh = new LocalMesh(plan, {
      onRestart: (name, exit) =>
        say(`up: ${name} exited (${exit.signal ?? `status ${exit.code}`}); restarted`),
      onPermanentExit: (name, exit, restartAt) =>
        say(
          `up: ${name} cannot run: ${exit.reason ?? `status ${exit.code}`}` +
            (restartAt ? `; retried at ${restartAt} (cloudtap status shows it)` : "; not restarted (--once)"),
        ),
    });
    const stopOnSignal = () => void mesh.stop();
    io.signal.addEventListener("abort", stopOnSignal, { once: true });
    try {
      await mesh.start();
      say(`up: mesh running, state in ${mesh.state.stateDir}`);
      for (const i of mesh.state.instances) say(`  ${describe(i)}`);
      say(`up: ${tracesLine(mesh.state.otlpEndpoint)}`);
      if (!plan.once) {
        say("up: continuous; Ctrl-C stops it");
        await new Promise<void>((resolve) =>
          io.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
        await mesh.stop();
        return 0;
      }
      await mesh.waitUntilDone({ signal: io.signal });
      const statuses = await mesh.statuses();
      const metricsDir = join(mesh.state.stateDir, "metrics");
      const scraped = await saveMetrics(mesh.state.instances, metricsDir);
      await mesh.stop();
      const summary = statuses.map((s) => ({
        name: s.instance.name,
        service: s.instance.service,
        restarts: s.instance.restarts,
        state: s.status?.["state"],
        counters: s.status?.["counters"],
      }));
      if (values.json)
        io.stdout.write(
          `${toJson({ stateDir: mesh.state.stateDir, metricsFiles: scraped.saved, instances: summary })}\n`,
        );
      else {
        io.stdout.write(`window done; every sink flushed (state in ${mesh.state.stateDir})\n`);
        io.stdout.write(`${tracesLine(mesh.state.otlpEndpoint)}\n`);
        io.stdout.write(
          `metrics: the last scrape of each service in ${metricsDir}/ (Prometheus text, ${scraped.saved.length} files${scraped.failed.length ? `; not scraped: ${scraped.failed.join(", ")}` : ""}); live at each service's /metrics while it runs (URLs in mesh.json, logs in logs/)\n`,
        );
        const outcomes: Record<string, number> = {};
        for (const s of summary.filter((x) => x.service === "stitcher"))
          for (const [k, v] of Object.entries((s.counters ?? {}) as Record<string, number>)) {
            const m = /^stitcher_tls_outcome\{.*outcome=([^,}]+)/.exec(k);
            if (m) outcomes[m[1]!] = (outcomes[m[1]!] ?? 0) + v;
          }
        const tls = Object.entries(outcomes).map(([k, v]) => `${k} ${v}`);
        io.stdout.write(`tls: ${tls.length ? tls.join(", ") : "no TLS decryption"}\n`);
        for (const s of summary) {
          const c = (s.counters ?? {}) as Record<string, number>;
          const pick = Object.entries(c)
            .filter(([k]) =>
              /^(blobs_done|blobs_quarantined|batches_published|records_published|stitcher_records|stitcher_frames_sent|stitcher_messages_acked|egress_frames|egress_batches)/.test(
                k,
              ),
            )
            .map(([k, v]) => `${k} ${v}`)
            .join(", ");
          io.stdout.write(`  ${s.name.padEnd(14)} restarts ${s.restarts}${pick ? `; ${pick}` : ""}\n`);
        }
      }
      return 0;
    } catch (err) {
      await mesh.stop();
      throw err;
    } finally {
      io.signal.removeEventListener("abort", stopOnSignal);
    }
  },
};

function describe(i: MeshInstance): string {
  return `${i.name.padEnd(14)} pid ${String(i.pid ?? "-").padEnd(7)} ${i.address}${i.metrics ? `  metrics ${i.metrics}` : ""}`;
}

/**
 * The last Prometheus scrape of every instance with a metrics endpoint, into `<dir>/<instance>.prom`, before
 * the mesh stops (a --once run's metrics outlive it there). An instance that does not answer is named.
 */
async function saveMetrics(
  instances: readonly MeshInstance[],
  dir: string,
): Promise<{ saved: string[]; failed: string[] }> {
  mkdirSync(dir, { recursive: true });
  const saved: string[] = [];
  const failed: string[] = [];
  await Promise.all(
    instances.map(async (i) => {
      if (!i.metrics) return;
      try {
        const res = await fetch(i.metrics, { signal: AbortSignal.timeout(5_000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const file = join(dir, `${i.name}.prom`);
        await writeFile(file, await res.text());
        saved.push(file);
      } catch (err) {
        failed.push(`${i.name} (${(err as Error).message})`);
      }
    }),
  );
  return { saved: saved.sort(), failed: failed.sort() };
}

/** Where the run's traces went (OTLP/HTTP), or how to send them. */
function tracesLine(otlpEndpoint: string | undefined): string {
  return otlpEndpoint
    ? `traces: OTLP/HTTP to ${otlpEndpoint} (Jaeger from deploy/compose.observability.yaml: http://127.0.0.1:16686)`
    : "traces: off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318, to send them to a collector or Jaeger)";
}
