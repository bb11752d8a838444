/**
 * `cloudtap simulate --start`: the virtual clock moved off its fixed default date, so a simulator in a loop
 * (deploy/compose.demo.yaml) keeps landing new blobs instead of rewriting the same keys. Two runs of one
 * seed at two starts into one store: disjoint blob and key-log keys, disjoint connection ids, the same
 * traffic shape, and one stitch of the store rebuilds and decrypts both.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseBlobKey } from "@cloudtap/tap-format";
import { CLOUDTAP_BIN } from "@cloudtap/test-harness";

function cloudtap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface Run {
  manifestKey: string;
  manifest: {
    parameters: { startNs: string };
    connections: { connId: string; startNs: string; protocol: string; tls: unknown }[];
    blobs: { data: { key: string }[]; keyLogs: { key: string }[] };
  };
}

const CONNECTIONS = 10;
const HOUR_NS = 3_600_000_000_000n;

describe("cli - simulate --start", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-sim-start-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const store = join(dir, "store");
  const simulate = (start: string): Run => {
    const r = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      String(CONNECTIONS),
      "--seed",
      "start-test",
      "--start",
      start,
      "--json",
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Run;
  };
  const fixedStart = "2026-06-01T12:00:00Z";
  const fixedNs = BigInt(Date.parse(fixedStart)) * 1_000_000n;
  let runA: Run;
  let runB: Run;
  let nowBeforeB: bigint;

  it("two runs of one seed at two starts land side by side: disjoint keys and connection ids", () => {
    runA = simulate(fixedStart);
    nowBeforeB = BigInt(Date.now()) * 1_000_000n;
    runB = simulate("now");
    assert.equal(BigInt(runA.manifest.parameters.startNs), fixedNs);
    const startB = BigInt(runB.manifest.parameters.startNs);
    assert.ok(startB >= nowBeforeB && startB < nowBeforeB + HOUR_NS, "--start now is the wall clock");
    assert.notEqual(runA.manifestKey, runB.manifestKey);

    const keysOf = (r: Run) => [...r.manifest.blobs.data, ...r.manifest.blobs.keyLogs].map((b) => b.key);
    const a = new Set(keysOf(runA));
    assert.ok(a.size > 0);
    for (const k of keysOf(runB)) assert.ok(!a.has(k), `${k} written by both runs`);
    for (const [run, start] of [
      [runA, fixedNs],
      [runB, startB],
    ] as const) {
      for (const k of keysOf(run)) {
        const t = parseBlobKey(k)?.startNs;
        assert.ok(t !== undefined && t >= start && t < start + HOUR_NS, `${k} is not at the run's start`);
      }
      assert.equal(BigInt(run.manifest.connections[0]!.startNs), start);
    }

    const idsA = new Set(runA.manifest.connections.map((c) => c.connId));
    assert.equal(idsA.size, CONNECTIONS);
    for (const c of runB.manifest.connections)
      assert.ok(!idsA.has(c.connId), `connection id ${c.connId} twice`);
    // The same seed: the same traffic, at another time.
    assert.deepEqual(
      runB.manifest.connections.map((c) => c.protocol),
      runA.manifest.connections.map((c) => c.protocol),
    );
  });

  it("one stitch of the store rebuilds and decrypts the connections of both runs; a window picks one run", () => {
    const all = [...runA.manifest.connections, ...runB.manifest.connections];
    const tls = all.filter((c) => c.tls !== null).length;
    assert.ok(tls > 0);
    const stitch = (...window: string[]) => {
      const r = cloudtap(
        "stitch",
        "--source",
        store,
        "--variant",
        "cleartext",
        "--pcapng",
        join(dir, `out${window.length}.pcapng`),
        ...window,
        "--json",
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as {
        flows: { tcp: number; udp: number; withoutOpen: number };
        tls: { outcomes: Record<string, number> };
        gaps: { count: number };
        problems: unknown[];
      };
    };
    const both = stitch();
    assert.equal(both.flows.tcp + both.flows.udp, 2 * CONNECTIONS);
    assert.equal(both.flows.withoutOpen, 0);
    assert.equal(both.tls.outcomes["decrypted"], tls);
    assert.equal(both.gaps.count, 0);
    assert.deepEqual(both.problems, []);

    const untilA = new Date(Number((fixedNs + HOUR_NS) / 1_000_000n)).toISOString();
    const onlyA = stitch("--until", untilA);
    assert.equal(onlyA.flows.tcp + onlyA.flows.udp, CONNECTIONS);
    assert.equal(onlyA.tls.outcomes["decrypted"], runA.manifest.connections.filter((c) => c.tls).length);
  });

  it("a --start that is no time is a usage error", () => {
    const r = cloudtap("simulate", "--out", join(dir, "bad"), "--start", "yesterday-ish");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--start: "yesterday-ish" is not a time/);
  });
});
