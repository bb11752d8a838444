/**
 * Bad input through the mesh (one-shot window, one fetcher, two stitchers): among the simulator's blobs and
 * key logs, a foreign object under a blob's name (random bytes), a blob cut in half, a blob with bytes
 * overwritten in its middle, a blob that is deleted after the fetcher listed it and before it reads it, a
 * key log of garbage lines, a key log whose secrets for one TLS connection are wrong and that names another
 * connection's client random twice (wrong secrets first, the right ones after). Each is counted with its
 * reason in `cloudtap status --json` (fetcher: blobs_quarantined{reason}, blob_problems{kind}; key-broker:
 * lines_skipped, conflicts; stitcher: stitcher_tls_outcome{outcome=integrity-failure},
 * stitcher_tls_candidate_rejections), and the rest of the
 * traffic is unaffected: the mesh's output is, flow for flow, what one-process `cloudtap stitch` writes from
 * the same store, and every connection whose blobs were not damaged matches the manifest.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LocalMesh } from "@cloudtap/local-mesh";
import { byEndpoints, CLOUDTAP_BIN, followStreams } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";
import { sumCounter } from "./mesh-helpers.js";

function filesUnder(dir: string, suffix: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map(String)
    .filter((f) => f.endsWith(suffix))
    .sort();
}

interface StatusJson {
  readonly instances: readonly {
    readonly instance: { readonly name: string; readonly service: string };
    readonly status?: { readonly counters: Record<string, number> };
  }[];
}

describe("mesh - bad input: quarantined and counted with its reason, the rest unaffected", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-bad-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("mesh - foreign, cut, corrupt and vanished blobs, garbage and wrong key logs", async () => {
    const store = join(dir, "store");
    const keysDir = join(dir, "keys");
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--keys-out",
      keysDir,
      "--connections",
      "32",
      "--seed",
      "52",
      "--blob-size",
      "8KiB",
    );
    assert.equal(sim.status, 0, sim.stderr);
    const manifest = storeManifest(store);
    const blobs = filesUnder(store, ".ctap");
    assert.ok(blobs.length > 40, `${blobs.length} blobs`);
    const leaf = /(\d{20})-(\d{10})\.ctap$/;
    const renamed = (key: string, seq: string) => key.replace(leaf, (_m, ns: string) => `${ns}-${seq}.ctap`);

    // Damage: a blob cut in half, one overwritten in its middle.
    const cutKey = blobs[Math.floor(blobs.length * 0.3)]!;
    const cut = readFileSync(join(store, cutKey));
    writeFileSync(join(store, cutKey), cut.subarray(0, Math.floor(cut.length / 2)));
    const corruptKey = blobs[Math.floor(blobs.length * 0.6)]!;
    const corrupt = readFileSync(join(store, corruptKey));
    corrupt.fill(0xa5, Math.floor(corrupt.length / 2), Math.floor(corrupt.length / 2) + 64);
    writeFileSync(join(store, corruptKey), corrupt);
    // A foreign object under a blob's name, and one that will vanish: both sort last, so the one fetcher
    // reaches them after every other blob (the vanishing one after its listing, when it is deleted).
    const last = blobs[blobs.length - 1]!;
    const foreignKey = renamed(last, "9999999998");
    writeFileSync(join(store, foreignKey), randomBytes(5000));
    const vanishKey = renamed(last, "9999999999");
    writeFileSync(join(store, vanishKey), randomBytes(5000));

    // Key logs: one of garbage lines; in another, one TLS connection's secrets replaced (wrong keys).
    const keyLogs = filesUnder(keysDir, ".keylog");
    writeFileSync(
      join(keysDir, keyLogs[0]!.replace(/[^/]+\.keylog$/, "00000000000000000001-garbage.keylog")),
      "this is not a key log\nCLIENT_RANDOM zz 11\nCLIENT_RANDOM 0011 \n\u0000\u0001binary\n",
    );
    // And another connection's client random logged twice: a spoiled copy of its lines first, the right
    // ones after (both sets must reach the stitcher, which decrypts with the second, as one process does).
    const victimLog = join(keysDir, keyLogs[0]!);
    const lines = readFileSync(victimLog, "utf8").split("\n");
    const keyLines = lines.filter((l) => /^\S+ [0-9a-f]{64} [0-9a-f]+$/.test(l));
    const victimRandom = keyLines[0]!.split(" ")[1]!;
    const twiceRandom = keyLines.map((l) => l.split(" ")[1]!).find((r) => r !== victimRandom)!;
    assert.ok(twiceRandom, "a second client random in the key log");
    const spoil = (l: string) => {
      const [label, random, secret] = l.split(" ");
      return `${label} ${random} ${secret!.replace(/[0-9a-f]/g, (c) => ((Number.parseInt(c, 16) + 7) % 16).toString(16))}`;
    };
    const twiceLines = keyLines.filter((l) => l.split(" ")[1] === twiceRandom);
    writeFileSync(
      victimLog,
      lines
        .flatMap((l) => {
          const [, random, secret] = l.split(" ");
          if (random === victimRandom && secret) return [spoil(l)];
          if (l === twiceLines[0]) return [...twiceLines.map(spoil), l];
          return [l];
        })
        .join("\n"),
    );

    const meshFile = join(dir, "mesh.pcapng");
    const stateDir = join(dir, "state");
    const mesh = new LocalMesh({
      stateDir,
      source: store,
      keys: keysDir,
      once: true,
      fetchers: 1,
      stitchers: 2,
      shardCount: 4,
      variant: "both",
      outputs: { pcapng: [meshFile] },
    });
    // The vanishing blob: deleted the moment the fetcher says its listing is complete.
    let vanished = false;
    const fetcherLog = join(stateDir, "logs", "fetcher-1.log");
    const watcher = (async () => {
      const deadline = Date.now() + 600_000;
      while (!vanished && Date.now() < deadline) {
        if (existsSync(fetcherLog) && readFileSync(fetcherLog, "utf8").includes('"msg":"listing complete"')) {
          unlinkSync(join(store, vanishKey));
          vanished = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    let status: StatusJson;
    try {
      await mesh.start();
      await mesh.waitUntilDone();
      await watcher;
      const r = cloudtap("status", "--state-dir", stateDir, "--json");
      assert.equal(r.status, 0, r.stderr);
      status = JSON.parse(r.stdout) as StatusJson;
    } finally {
      vanished = true;
      await mesh.stop();
    }
    const counters = status.instances.map((i) => ({
      service: i.instance.service,
      ...(i.status ? { counters: i.status.counters } : {}),
    }));
    const named = (service: string, name: string) => sumCounter(counters, service, name);
    const byLabel = (service: string, prefix: string) => {
      const out: Record<string, number> = {};
      for (const i of counters.filter((c) => c.service === service))
        for (const [k, v] of Object.entries(i.counters ?? {}))
          if (k.startsWith(prefix)) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    const quarantined = byLabel("fetcher", "blobs_quarantined{");
    const problems = byLabel("fetcher", "blob_problems{");
    const outcomes = byLabel("stitcher", "stitcher_tls_outcome{");
    process.stdout.write(
      `# quarantined ${JSON.stringify(quarantined)}; problems ${JSON.stringify(problems)}; damaged ${named("fetcher", "blobs_damaged")}; key lines skipped ${named("key-broker", "lines_skipped")}; key conflicts ${named("key-broker", "conflicts")} (twice-logged lines ${twiceLines.length}); candidate rejections ${named("stitcher", "stitcher_tls_candidate_rejections")}\n`,
    );
    assert.equal(quarantined["blobs_quarantined{reason=vanished}"], 1, "the vanished blob");
    assert.equal(
      Object.values(quarantined).reduce((a, b) => a + b, 0),
      2,
      "the foreign object and the vanished blob are quarantined",
    );
    assert.ok(named("fetcher", "blobs_damaged") >= 2, "the cut and the corrupt blob are counted damaged");
    assert.ok(Object.keys(problems).length > 0, "their problems are counted by kind");
    assert.ok(named("key-broker", "lines_skipped") >= 3, "the garbage key-log lines are skipped and counted");
    const failed = Object.entries(outcomes)
      .filter(([k]) => k.includes("outcome=integrity-failure"))
      .reduce((a, [, v]) => a + v, 0);
    assert.ok(failed >= 1, `the connection with wrong keys: ${JSON.stringify(outcomes)}`);
    assert.equal(
      named("key-broker", "conflicts"),
      twiceLines.length,
      "each secret of the twice-logged client random is a conflict kept as a candidate",
    );
    assert.equal(named("key-broker", "candidates_dropped"), 0);
    // Named per connection as one-process stitch names them: the stitchers log each TLS connection problem.
    const tlsProblems = readdirSync(join(stateDir, "logs"))
      .filter((f) => f.startsWith("stitcher"))
      .flatMap((f) => readFileSync(join(stateDir, "logs", f), "utf8").split("\n"))
      .filter((l) => l.includes('"msg":"tls connection problem"'))
      .map((l) => JSON.parse(l) as { connection: string; outcome: string; candidatesRejected: number });
    const connOf = (random: string) =>
      (manifest.connections as readonly { connId: string; tls?: { clientRandom: string } }[]).find(
        (c) => c.tls?.clientRandom.toLowerCase() === random,
      )?.connId;
    assert.ok(
      tlsProblems.some(
        (p) =>
          p.connection === connOf(twiceRandom) &&
          p.outcome === "candidate-rejected" &&
          p.candidatesRejected === 1,
      ),
      JSON.stringify(tlsProblems),
    );
    assert.ok(
      tlsProblems.some((p) => p.connection === connOf(victimRandom) && p.outcome === "integrity-failure"),
      JSON.stringify(tlsProblems),
    );
    assert.ok(
      named("stitcher", "stitcher_tls_candidate_rejections") >= 1,
      "the stitcher tried the wrong set of the twice-logged client random, then decrypted with the right one",
    );

    // The rest unaffected: the mesh writes what one process writes from the same (damaged) store.
    const oneFile = join(dir, "one.pcapng");
    const one = spawnSync(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "stitch",
        "--source",
        store,
        "--keys",
        keysDir,
        "--pcapng",
        oneFile,
        "--variant",
        "both",
      ],
      { encoding: "utf8", timeout: 240_000 },
    );
    assert.ok(existsSync(oneFile), one.stderr);
    const meshFlows = byEndpoints(followStreams(meshFile));
    const oneFlows = byEndpoints(followStreams(oneFile));
    assert.deepEqual([...meshFlows.keys()].sort(), [...oneFlows.keys()].sort());
    for (const [flow, want] of oneFlows) assert.deepEqual(meshFlows.get(flow), want, flow);
    const [got, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
    assert.deepEqual(got.udpDigests, reference.udpDigests);
    assert.deepEqual(got.keyLogLines, reference.keyLogLines);
    // And most connections are whole, as the manifest has them (only those of the damaged blobs are not).
    let whole = 0;
    let tcp = 0;
    for (const c of manifest.connections) {
      if (c.transport !== "tcp") continue;
      tcp++;
      const client = `${c.client.address}|${c.client.port}`;
      const server = `${c.server.address}|${c.server.port}`;
      const up = meshFlows.get(`${client}>${server}`);
      const down = meshFlows.get(`${server}>${client}`);
      if (up?.sha256 === c.c2s.raw.sha256 && down?.sha256 === c.s2c.raw.sha256) whole++;
    }
    process.stdout.write(`# ${whole} of ${tcp} TCP connections whole; ${got.packets} packets\n`);
    assert.ok(whole >= tcp - 6, `${whole} of ${tcp} whole`);
  });
});
