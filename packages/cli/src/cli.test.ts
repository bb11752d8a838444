/** The `cloudtap` command as a user runs it: a child process, its output and exit status. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { byEndpoints, CLOUDTAP_BIN, corpusDir, followStreams } from "@cloudtap/test-harness";

const CORPUS = corpusDir();

function cloudtap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("cli - ingest and inspect", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("ingests a capture with its key log, and inspect finds every connection and no problem", () => {
    const store = join(dir, "store");
    const ing = cloudtap(
      "ingest",
      "--pcap",
      join(CORPUS, "captures/hotplace__http2.pcapng"),
      "--keylog",
      join(CORPUS, "keys/hotplace__http.sslkeylog"),
      "--out",
      store,
      "--attr",
      "user=alice@example.com",
    );
    assert.equal(ing.status, 0, ing.stderr);
    assert.match(ing.stdout, /connections: tcp 16/);
    const ins = cloudtap("inspect", store, "--json");
    assert.equal(ins.status, 0, ins.stderr);
    const report = JSON.parse(ins.stdout);
    assert.equal(report.connections.total, 16);
    assert.deepEqual(report.problems, []);
    assert.equal(report.keyLogs.objects, 1);
    assert.equal(report.connectionList[0].attributes.user, "alice@example.com");
  });

  it("a capture cut inside a record (a killed tcpdump): the cut is a named problem, what came before is stored", () => {
    const cut = join(dir, "cut.pcap");
    writeFileSync(cut, readFileSync(join(CORPUS, "captures/snet__tls1_2.pcap")).subarray(0, 3000));
    const r = cloudtap("ingest", "--pcap", cut, "--out", join(dir, "cut-store"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /problems: +capture-truncated\n/);
    assert.match(r.stdout, /cut\.pcap: capture-truncated: .* after \d+ packets \(.* at offset \d+\)/);
    const ins = cloudtap("inspect", join(dir, "cut-store"), "--json");
    assert.equal(ins.status, 0, ins.stderr);
    assert.ok(JSON.parse(ins.stdout).blobs >= 1, "the blobs written read back");
  });

  it("names the byte offset of a file that is no capture and exits 1", () => {
    const bad = join(dir, "bad.pcap");
    writeFileSync(bad, "not a capture at all");
    const r = cloudtap("ingest", "--pcap", bad, "--out", join(dir, "bad-store"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unreadable after 0 packets: .* at offset 0/);
  });

  it("reports a corrupt blob and exits 1", () => {
    const store = join(dir, "store2");
    assert.equal(
      cloudtap("ingest", "--pcap", join(CORPUS, "captures/snet__tls1_2.pcap"), "--out", store).status,
      0,
    );
    const blob = JSON.parse(cloudtap("inspect", store, "--json").stdout).blobList[0].key as string;
    const path = join(store, blob);
    const bytes = readFileSync(path);
    bytes[bytes.length - 200]! ^= 0xff;
    writeFileSync(path, bytes);
    const r = cloudtap("inspect", path);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /corrupt-frames/);
  });

  it("explains a bad command line with exit status 2", () => {
    assert.equal(cloudtap("nonsense").status, 2);
    const r = cloudtap("ingest", "--out", dir);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--pcap is required/);
    assert.equal(cloudtap("inspect", "--help").status, 0);
  });

  it("stitch: a corrupt blob in the middle of the window is named and skipped, every other flow is complete, exit 0", () => {
    const store = join(dir, "sim");
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "24",
      "--seed",
      "5",
      "--blob-size",
      "48KiB",
      "--json",
    );
    assert.equal(sim.status, 0, sim.stderr);
    const manifest = JSON.parse(sim.stdout).manifest as {
      connections: {
        connId: string;
        transport: string;
        client: { address: string; port: number };
        server: { address: string; port: number };
        c2s: { raw: { length: number; sha256: string } };
        s2c: { raw: { length: number; sha256: string } };
      }[];
    };
    const inventory = JSON.parse(cloudtap("inspect", store, "--json").stdout) as {
      blobList: { key: string }[];
    };
    const blobs = inventory.blobList.map((b) => b.key);
    assert.ok(blobs.length >= 5, `${blobs.length} blobs`);
    const victim = blobs[Math.floor(blobs.length / 2)]!;
    // Which connections have records in the victim blob: those may lose bytes, every other one must not.
    const inVictim = JSON.parse(cloudtap("inspect", join(store, victim), "--json").stdout) as {
      connectionList: { connId: string }[];
    };
    const touched = new Set(inVictim.connectionList.map((c) => c.connId));
    const path = join(store, victim);
    const bytes = readFileSync(path);
    bytes.fill(0xee, 200, 260); // inside the first frames: checksums fail
    writeFileSync(path, bytes);

    const out = join(dir, "sim.pcapng");
    const r = cloudtap("stitch", "--source", store, "--pcapng", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { problems: { blob: string; kind: string }[] };
    assert.ok(
      summary.problems.length > 0 && summary.problems.every((p) => p.blob === victim),
      JSON.stringify(summary.problems),
    );
    const got = byEndpoints(followStreams(out));
    let checked = 0;
    for (const c of manifest.connections) {
      if (c.transport !== "tcp" || touched.has(c.connId)) continue;
      const cl = `${c.client.address}|${c.client.port}`;
      const sv = `${c.server.address}|${c.server.port}`;
      assert.deepEqual(
        got.get(`${cl}>${sv}`),
        { bytes: c.c2s.raw.length, sha256: c.c2s.raw.sha256 },
        c.connId,
      );
      assert.deepEqual(
        got.get(`${sv}>${cl}`),
        { bytes: c.s2c.raw.length, sha256: c.s2c.raw.sha256 },
        c.connId,
      );
      checked++;
    }
    assert.ok(checked > 0, "some connections lie outside the corrupt blob");
  });
});

describe("cli - the built command (what `pnpm cloudtap` runs)", () => {
  const BIN = new URL("../bin/cloudtap.mjs", import.meta.url).pathname;
  const built = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-cli-bin-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("is built from the sources, and stitches on one thread and on worker threads alike", () => {
    const store = join(dir, "store");
    const sim = built("simulate", "--out", store, "--connections", "20", "--seed", "3");
    assert.equal(sim.status, 0, sim.stderr);
    const runs = [1, 2].map((w) => {
      const r = built(
        "stitch",
        "--source",
        store,
        "--variant",
        "both",
        "--pcapng",
        join(dir, `w${w}.pcapng`),
        "--workers",
        String(w),
        "--json",
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { workers: number; packets: number; tls: { outcomes: object } };
    });
    assert.equal(runs[0]!.workers, 1);
    assert.equal(runs[1]!.workers, 2);
    assert.ok(runs[0]!.packets > 100);
    assert.equal(runs[1]!.packets, runs[0]!.packets);
    assert.deepEqual(runs[1]!.tls.outcomes, runs[0]!.tls.outcomes);
  });
});

describe("cli - the command list", () => {
  it("cli - --help lists every command by its own summary, and each command loads under its name", async () => {
    const { CommandSummary } = await import("./command-summaries.js");
    const { commandLoaders } = await import("./command-catalog.js");
    const help = cloudtap("--help");
    assert.equal(help.status, 0);
    assert.deepEqual(Object.keys(commandLoaders).sort(), Object.keys(CommandSummary).sort());
    for (const [name, load] of Object.entries(commandLoaders)) {
      const command = await load();
      assert.equal(command.name, name);
      assert.match(
        help.stdout,
        new RegExp(`\\b${name}\\s+${command.summary.slice(0, 20).replace(/[()]/g, "\\$&")}`),
      );
      assert.equal(cloudtap(name, "--help").status, 0, `${name} --help`);
    }
    assert.equal(cloudtap("no-such-command").status, 2);
  });
});
