/**
 * Acceptance on simulated traffic: for every connection of a simulator run, tshark reading the stitched
 * pcapng reports the same bytes per direction as the simulator's manifest (`follow,tcp,raw` SHA-256 and
 * length), with blobs in key order, with records shuffled across blobs, and with duplicate blobs; and with a
 * dropped chunk exactly that gap is flagged, the rest of the flow intact.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { createPcapngEncoder } from "@cloudtap/pcap";
import { runSimulation, type SimulationFaults, type SimulationManifest } from "@cloudtap/tapsim";
import { assertTcpMatchesManifest, expertInfo, tshark } from "@cloudtap/test-harness";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";

const CONNECTIONS = Number(process.env["STITCH_SIM_CONNECTIONS"] ?? 40);
const CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"];

async function simulateAndStitch(
  dir: string,
  name: string,
  faults: SimulationFaults,
): Promise<{ manifest: SimulationManifest; file: string; stitcher: Stitcher }> {
  const storeDir = join(dir, name);
  const store = openStore(storeDir);
  const { manifest } = await runSimulation({
    dataStore: store,
    keyStore: store,
    connections: CONNECTIONS,
    seed: 11,
    // Small blobs so that connections span many of them.
    blobSize: 64 * 1024,
    faults,
  });
  const listed = [];
  for await (const b of listBlobs(store)) listed.push(b);
  const encoder = createPcapngEncoder({ linkType: 1 });
  const stitcher = new Stitcher({ sink: encoder });
  const file = join(dir, `${name}.pcapng`);
  const out = createWriteStream(file);
  const report = await runStitchJob({
    blobs: (async function* () {
      yield* sortBlobsByTime(listed);
    })(),
    stitcher,
    output: encoder,
    sink: { write: (c) => void out.write(c) },
  });
  out.end();
  await once(out, "finish");
  assert.deepEqual(report.problems, []);
  return { manifest, file, stitcher };
}

describe("stitch - simulated traffic, judged by tshark against the manifest", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-sim-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("stitch - blobs in key order: every connection's bytes per direction, clean expert analysis", async () => {
    const { manifest, file, stitcher } = await simulateAndStitch(dir, "ordered", {});
    assertTcpMatchesManifest(manifest, file, { atLeast: CONNECTIONS / 2 });
    assert.equal(stitcher.table.stats.gaps, 0);
    assert.equal(stitcher.stats.flowsWithoutOpen, 0);
    const bad = expertInfo(file, CHECKSUMS).filter(
      (e) =>
        (e.severity === "Errors" || e.severity === "Warnings") &&
        e.group !== "Malformed" &&
        e.protocol === "TCP",
    );
    // RSTs are the simulator's own (some connections end with a reset); nothing else may appear.
    assert.deepEqual(
      bad.filter((e) => e.summary !== "Connection reset (RST)"),
      [],
    );
  });

  it("stitch - records shuffled across blobs and duplicate blobs: the same bytes", async () => {
    const { manifest, file, stitcher } = await simulateAndStitch(dir, "shuffled", {
      shuffle: true,
      duplicateBlobs: true,
    });
    assert.ok(manifest.faults.shuffle && manifest.faults.shuffle.movedRecords > 0, "records were moved");
    assert.ok((manifest.faults.duplicateBlobs?.length ?? 0) > 0, "blobs were duplicated");
    assertTcpMatchesManifest(manifest, file, { atLeast: CONNECTIONS / 2 });
    assert.equal(stitcher.table.stats.gaps, 0);
    assert.ok(stitcher.table.stats.duplicateBytes > 0, "duplicates were seen and dropped");
  });

  it("stitch - a dropped chunk: exactly that gap is flagged, at its place", async () => {
    const { manifest, file, stitcher } = await simulateAndStitch(dir, "gap", { gap: true });
    const gap = manifest.faults.gap;
    assert.ok(gap, "the simulator dropped a chunk");
    assert.equal(stitcher.table.stats.gaps, 1);
    assert.equal(stitcher.table.stats.gapBytes, gap.length);
    const lost = expertInfo(file, CHECKSUMS).filter((e) => /not captured|wasn't captured/.test(e.summary));
    const count = (re: RegExp) => lost.filter((e) => re.test(e.summary)).reduce((n, e) => n + e.count, 0);
    assert.equal(count(/^Previous segment/), 1, JSON.stringify(lost));
    // A receiver's ACK may cover the hole too (the capture, not the receiver, missed the bytes).
    assert.ok(count(/^ACKed segment/) <= 1, JSON.stringify(lost));
    // The flagged segment is the first one after the hole, in the gap's connection and direction.
    const c = manifest.connections.find((x) => x.connId === gap.connId)!;
    const [src, dst] = gap.direction === "c2s" ? [c.client, c.server] : [c.server, c.client];
    const flagged = tshark([
      "-n",
      "-r",
      file,
      "-Y",
      "tcp.analysis.lost_segment",
      "-T",
      "fields",
      "-e",
      "tcp.srcport",
      "-e",
      "tcp.dstport",
      "-e",
      "tcp.seq",
    ]).trim();
    assert.equal(flagged, `${src.port}\t${dst.port}\t${gap.offset + gap.length + 1}`);
  });
});
