/**
 * The mesh end to end, as a user runs it: `cloudtap simulate` fills a directory store with real TLS traffic,
 * `cloudtap up --once` runs nats-server (JetStream on file storage), two fetchers, the key-broker, two
 * stitchers and mirror-egress as separate OS processes with mutual TLS, and the pcapng it writes is judged
 * against the simulator's manifest (tshark follows every TCP connection) and against `cloudtap stitch` on
 * the same store: the same packets and the same embedded keys, flow for flow.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  assertTcpMatchesManifest,
  byEndpoints,
  followStreams,
  type ManifestTcpView,
} from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";
import { capinfosOrder } from "./mesh-helpers.js";

interface UpSummary {
  readonly stateDir: string;
  readonly instances: readonly {
    readonly name: string;
    readonly service: string;
    readonly restarts: number;
    readonly state?: string;
    readonly counters?: Record<string, number>;
  }[];
}

function sumCounter(summary: UpSummary, service: string, prefix: string): number {
  let n = 0;
  for (const i of summary.instances.filter((x) => x.service === service))
    for (const [k, v] of Object.entries(i.counters ?? {}))
      if (k === prefix || k.startsWith(`${prefix}{`)) n += v;
  return n;
}

/** Every secret of every key log of a store (the hex of each line's last field). */
function secretsOf(keyDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".keylog"))
        for (const line of readFileSync(p, "utf8").split("\n")) {
          const parts = line.trim().split(/\s+/);
          if (parts.length === 3 && /^[0-9a-f]{32,}$/i.test(parts[2]!)) out.push(parts[2]!.toLowerCase());
        }
    }
  };
  walk(keyDir);
  return out;
}

describe("mesh - cloudtap up --once, every service a separate process", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-it-"));
  const store = join(dir, "store");
  const keys = join(dir, "keys");
  let manifest: ManifestTcpView;
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(() => {
    // Keys in a separate store: only the key-broker is given it.
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--keys-out",
      keys,
      "--connections",
      "48",
      "--seed",
      "21",
      "--blob-size",
      "24KiB",
      "--json",
    );
    assert.equal(sim.status, 0, sim.stderr);
    manifest = storeManifest(store);
  });

  it("mesh - two fetchers and two stitchers: every connection once, decrypted, as cloudtap stitch writes it", async () => {
    const meshFile = join(dir, "mesh.pcapng");
    const stateDir = join(dir, "state");
    const up = cloudtap(
      "up",
      "--source",
      store,
      "--keys",
      keys,
      "--once",
      "--variant",
      "both",
      "--fetchers",
      "2",
      "--stitchers",
      "2",
      "--shards",
      "8",
      "--pcapng",
      meshFile,
      "--state-dir",
      stateDir,
      "--json",
    );
    assert.equal(up.status, 0, up.stderr);
    const summary = JSON.parse(up.stdout) as UpSummary;

    // The work was split: each fetcher took blobs and each stitcher took records; nothing restarted.
    const blobs = readdirSync(join(store, "data"), { recursive: true }).filter((f) =>
      String(f).endsWith(".ctap"),
    );
    const fetchers = summary.instances.filter((i) => i.service === "fetcher");
    const stitchers = summary.instances.filter((i) => i.service === "stitcher");
    assert.equal(fetchers.length, 2);
    assert.equal(stitchers.length, 2);
    assert.equal(sumCounter(summary, "fetcher", "blobs_done"), blobs.length);
    for (const f of fetchers) assert.ok((f.counters?.["blobs_done"] ?? 0) > 0, `${f.name} took no blob`);
    for (const s of stitchers)
      assert.ok((s.counters?.["stitcher_records"] ?? 0) > 0, `${s.name} took no record`);
    for (const i of summary.instances) assert.equal(i.restarts, 0, `${i.name} restarted`);
    process.stdout.write(
      `# split: ${[...fetchers, ...stitchers]
        .map((i) => `${i.name} ${i.counters?.["blobs_done"] ?? i.counters?.["stitcher_records"]}`)
        .join(", ")} (fetchers: blobs, stitchers: records)\n`,
    );
    assert.equal(
      sumCounter(summary, "fetcher", "records_published"),
      sumCounter(summary, "stitcher", "stitcher_records"),
    );

    // Every TLS connection decrypted (keys came from the key-broker only).
    const tlsConnections = manifest.connections.filter((c) => (c as { tls?: unknown }).tls != null).length;
    assert.ok(tlsConnections > 10);
    let decrypted = 0;
    for (const s of stitchers)
      for (const [k, v] of Object.entries(s.counters ?? {}))
        if (k.includes("outcome=decrypted")) decrypted += v;
    assert.equal(decrypted, tlsConnections);

    // One time order across the stitchers' streams (mirror-egress merges them by watermark): strict, and
    // nothing was written late or before its time.
    const order = capinfosOrder(meshFile);
    assert.equal(order.strict, true, "the mesh's pcapng is in strict time order");
    assert.equal(sumCounter(summary, "mirror-egress", "egress_merge_late_frames"), 0);
    assert.equal(sumCounter(summary, "mirror-egress", "egress_merge_overflow_frames"), 0);
    assert.equal(order.packets, sumCounter(summary, "mirror-egress", "egress_frames"));

    // Every TCP connection's bytes per direction, as the manifest has them (tshark follows them).
    assertTcpMatchesManifest(manifest, meshFile, { atLeast: 20 });

    // The same packets and keys as the one-process stitch of the same stores.
    const oneFile = join(dir, "one.pcapng");
    const one = cloudtap(
      "stitch",
      "--source",
      store,
      "--keys",
      keys,
      "--pcapng",
      oneFile,
      "--variant",
      "both",
    );
    assert.equal(one.status, 0, one.stderr);
    const [mesh, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
    assert.equal(mesh.packets, reference.packets);
    assert.deepEqual(mesh.udpDigests, reference.udpDigests);
    assert.deepEqual(mesh.keyLogLines, reference.keyLogLines);
    // Every TCP flow of both variants (originals and their cleartext twins) carries the same bytes.
    assert.deepEqual(byEndpoints(followStreams(meshFile)), byEndpoints(followStreams(oneFile)));

    // No secret of the run's key logs in any service's log.
    const secrets = secretsOf(keys);
    assert.ok(secrets.length > 10);
    const logDir = join(stateDir, "logs");
    for (const name of readdirSync(logDir)) {
      const text = readFileSync(join(logDir, name), "utf8").toLowerCase();
      for (const secret of secrets) assert.ok(!text.includes(secret), `a secret in ${name}`);
    }
    // The fetchers were given no key-store location or credential.
    const fetcherLog = readFileSync(join(logDir, "fetcher-1.log"), "utf8");
    const config = JSON.parse(fetcherLog.split("\n").find((l) => l.includes('"service config"'))!).config;
    assert.ok(!JSON.stringify(config).includes(keys), "the fetcher knows the key store");
  });
});
