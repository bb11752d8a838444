/**
 * Restart state: a stitcher killed with SIGKILL in the middle of a window, while TLS connections are open,
 * is restarted (by the local mesh's supervisor, as a compose restart policy would), and the connections it
 * held still come out complete and decrypted. The chunk messages of open connections were never acked, so
 * JetStream redelivers them after the ack wait and the new process rebuilds those connections from their
 * first record. What the dead process had already exported comes again to mirror-egress, which drops the
 * frames it wrote (FlowDedup): the file has no duplicate, and the copies dropped are printed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LocalMesh } from "@cloudtap/local-mesh";
import { assertTcpMatchesManifest, byEndpoints, followStreams } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap, storeManifest } from "./cloudtap-cli.js";

describe("mesh - a stitcher killed with SIGKILL mid-window", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-kill-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("mesh - restarted, every connection complete and decrypted; duplicates counted", async () => {
    const store = join(dir, "store");
    // Many small blobs: connections span many chunk messages, so some are open whenever the kill lands.
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "96",
      "--seed",
      "33",
      "--blob-size",
      "32KiB",
    );
    assert.equal(sim.status, 0, sim.stderr);
    const manifest = storeManifest(store);

    const meshFile = join(dir, "mesh.pcapng");
    const restarts: string[] = [];
    /** Why each restarted instance had exited (its exit status and reason line), for a failure's message. */
    const exits: string[] = [];
    const mesh = new LocalMesh(
      {
        stateDir: join(dir, "state"),
        source: store,
        once: true,
        fetchers: 1,
        stitchers: 1,
        shardCount: 4,
        variant: "both",
        outputs: { pcapng: [meshFile] },
        // A short ack wait, so the dead stitcher's messages come back soon.
        // A short lateness, so frames go out while the window runs: the kill meets connections already
        // exported whose messages are still held, and their copies reach the egress.
        env: { STITCHER_ACK_WAIT: "3s", STITCHER_LATENESS: "1s" },
      },
      {
        onRestart: (name, exit) => {
          restarts.push(name);
          exits.push(`${name}: ${JSON.stringify(exit)}`);
        },
      },
    );
    let killedAtRecords = 0;
    let droppedCopies = 0;
    try {
      await mesh.start();
      const stitcher = mesh.instance("stitcher-1")!;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const status = (await mesh.statuses()).find((s) => s.instance.name === "stitcher-1")?.status;
        const records =
          (status?.["counters"] as Record<string, number> | undefined)?.["stitcher_records"] ?? 0;
        // Some connections are done and exported by then, others open: both kinds are what a kill meets.
        if (records >= 100) {
          killedAtRecords = records;
          break;
        }
        assert.ok(Date.now() < deadline, "the stitcher never started stitching");
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(stitcher.signal("SIGKILL"), "the stitcher was running");
      await mesh.waitUntilDone();
      const statuses = await mesh.statuses();
      const counters = statuses.find((s) => s.instance.name === "stitcher-1")?.status?.["counters"] as Record<
        string,
        number
      >;
      assert.ok(counters["stitcher_records"]! > 0);
      const egress = statuses.find((s) => s.instance.service === "mirror-egress")?.status?.["counters"] as
        | Record<string, number>
        | undefined;
      droppedCopies = egress?.["egress_duplicate_frames"] ?? 0;
    } finally {
      await mesh.stop();
    }
    assert.deepEqual(restarts, ["stitcher-1"], `restarts:\n${exits.join("\n")}`);
    assert.ok(killedAtRecords > 0);

    // Complete: every connection's bytes as the manifest has them, and every packet of a one-process run.
    assertTcpMatchesManifest(manifest, meshFile, { atLeast: 40 });
    const oneFile = join(dir, "one.pcapng");
    const one = cloudtap("stitch", "--source", store, "--pcapng", oneFile, "--variant", "both");
    assert.equal(one.status, 0, one.stderr);
    const [got, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
    // Every flow of both variants carries the same bytes as in one process (tshark drops a duplicated
    // connection's second copy as retransmissions, so a duplicate cannot hide a missing byte).
    const meshFlows = byEndpoints(followStreams(meshFile));
    const oneFlows = byEndpoints(followStreams(oneFile));
    assert.deepEqual([...meshFlows.keys()].sort(), [...oneFlows.keys()].sort());
    for (const [flow, want] of oneFlows) assert.deepEqual(meshFlows.get(flow), want, flow);
    // UDP datagrams: each one of the one-process run is there.
    const count = new Map<string, number>();
    for (const d of got.udpDigests) count.set(d, (count.get(d) ?? 0) + 1);
    for (const d of reference.udpDigests) {
      const n = count.get(d) ?? 0;
      assert.ok(n > 0, "a datagram of the one-process run is missing");
      count.set(d, n - 1);
    }
    for (const line of reference.keyLogLines) assert.ok(got.keyLogLines.includes(line), "a key missing");
    // Duplicates (the same time and bytes): none; the egress dropped the rebuilt connections' copies.
    const duplicates = got.packets - new Set(got.packetDigests).size;
    process.stdout.write(
      `# killed after ${killedAtRecords} records; ${got.packets} packets (one process ${reference.packets}), ${duplicates} duplicates; the egress dropped ${droppedCopies} copies\n`,
    );
    assert.equal(duplicates, 0, "no duplicate packet in the file");
    assert.ok(droppedCopies > 0, "the rebuilt connections' copies reached the egress and were dropped");
  });
});
