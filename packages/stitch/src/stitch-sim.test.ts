/**
 * Acceptance on simulated traffic: for every connection of a simulator run, tshark reading the stitched
 * pcapng reports the same bytes per direction as the simulator's manifest (`follow,tcp,raw` SHA-256 and
 * length), with blobs in key order, with records shuffled across blobs, and with duplicate blobs; and with a
 * dropped chunk exactly that gap is flagged, the rest of the flow intact. The SYN and SYN-ACK carry the TCP
 * options the simulator recorded, and segments of connections with timestamps carry advancing ones.
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
import { SCALED_RECEIVE_WINDOW } from "./tcp-synth.js";

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

  let ordered: { manifest: SimulationManifest; file: string } | undefined;

  it("stitch - blobs in key order: every connection's bytes per direction, clean expert analysis", async () => {
    const { manifest, file, stitcher } = await simulateAndStitch(dir, "ordered", {});
    ordered = { manifest, file };
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

  it("stitch - fingerprints: the recorded SYN options, scaled windows, advancing timestamps (tshark)", () => {
    assert.ok(ordered, "the ordered run went first");
    const { manifest, file } = ordered;
    const fields = [
      "tcp.stream",
      "tcp.srcport",
      "tcp.dstport",
      "tcp.flags.syn",
      "tcp.flags.ack",
      "tcp.options.mss_val",
      "tcp.options.wscale.shift",
      "tcp.option_kind",
      "tcp.options.timestamp.tsval",
      "tcp.options.timestamp.tsecr",
      "tcp.window_size_value",
    ];
    const rows = tshark([
      "-n",
      "-r",
      file,
      "-Y",
      "tcp",
      "-T",
      "fields",
      "-E",
      "occurrence=f",
      ...fields.flatMap((f) => ["-e", f]),
    ])
      .trim()
      .split("\n")
      .map((line) => {
        const v = line.split("\t");
        return {
          stream: v[0]!,
          src: Number(v[1]),
          dst: Number(v[2]),
          syn: v[3] === "1" || v[3] === "True",
          ack: v[4] === "1" || v[4] === "True",
          mss: v[5] ? Number(v[5]) : undefined,
          ws: v[6] ? Number(v[6]) : undefined,
          kinds: (v[7] ?? "").split(",").filter(Boolean).map(Number),
          tsval: v[8] ? Number(v[8]) : undefined,
          tsecr: v[9] ? Number(v[9]) : undefined,
          win: Number(v[10]),
        };
      });
    // -E occurrence=f keeps the first option kind only: ask for every kind of the SYNs separately.
    const synKinds = new Map<string, number[]>();
    for (const line of tshark([
      "-n",
      "-r",
      file,
      "-Y",
      "tcp.flags.syn == 1",
      "-T",
      "fields",
      "-e",
      "tcp.srcport",
      "-e",
      "tcp.dstport",
      "-e",
      "tcp.option_kind",
    ])
      .trim()
      .split("\n")) {
      const [a, b, k] = line.split("\t");
      synKinds.set(`${a}>${b}`, (k ?? "").split(",").filter(Boolean).map(Number));
    }
    let checked = 0;
    let withTimestamps = 0;
    for (const c of manifest.connections) {
      if (c.transport !== "tcp" || !c.tcp) continue;
      const t = c.tcp;
      const mine = rows.filter(
        (r) =>
          (r.src === c.client.port && r.dst === c.server.port) ||
          (r.src === c.server.port && r.dst === c.client.port),
      );
      const syn = mine.find((r) => r.syn && !r.ack && r.src === c.client.port);
      const synAck = mine.find((r) => r.syn && r.ack && r.src === c.server.port);
      if (!syn || !synAck) continue; // a port reused by another flow, or mid-stream
      checked++;
      assert.equal(syn.mss, t.clientMss, `client MSS of ${c.connId}`);
      assert.equal(synAck.mss, t.serverMss, `server MSS of ${c.connId}`);
      assert.equal(syn.ws, t.clientWindowScale, `client window scale of ${c.connId}`);
      assert.equal(synAck.ws, t.serverWindowScale, `server window scale of ${c.connId}`);
      const kinds = synKinds.get(`${c.client.port}>${c.server.port}`) ?? [];
      assert.equal(kinds.includes(4), t.sackPermitted, `SACK permitted of ${c.connId}: ${kinds}`);
      assert.equal(kinds.includes(8), t.timestamps, `timestamps of ${c.connId}: ${kinds}`);
      // After the handshake each side advertises its scaled receive window in its own units.
      const after = mine.filter((r) => !r.syn);
      for (const r of after) {
        const ws = r.src === c.client.port ? t.clientWindowScale : t.serverWindowScale;
        assert.equal(
          r.win,
          Math.min(0xffff, Math.floor(SCALED_RECEIVE_WINDOW / 2 ** ws)),
          `window of ${c.connId}`,
        );
      }
      if (!t.timestamps) {
        assert.ok(
          after.every((r) => r.tsval === undefined),
          `no timestamps on ${c.connId}`,
        );
        continue;
      }
      withTimestamps++;
      assert.equal(synAck.tsecr, syn.tsval, "the SYN-ACK echoes the SYN's TSval");
      // Every segment carries TSval (never going back per side) and echoes the peer's last TSval.
      const last = new Map<number, number>([
        [c.client.port, syn.tsval!],
        [c.server.port, synAck.tsval!],
      ]);
      let advanced = false;
      for (const r of after) {
        assert.ok(r.tsval !== undefined, `timestamp option on every segment of ${c.connId}`);
        const before = last.get(r.src)!;
        const step = (r.tsval - before) >>> 0;
        assert.ok(step < 2 ** 31, `TSval of ${c.connId} never goes back`);
        if (step > 0) advanced = true;
        assert.equal(
          r.tsecr,
          last.get(r.src === c.client.port ? c.server.port : c.client.port),
          "TSecr echoes the peer",
        );
        last.set(r.src, r.tsval);
      }
      const spanMs = (Number(BigInt(c.close.timestampNs) - BigInt(c.startNs)) / 1e6) | 0;
      if (spanMs > 2) assert.ok(advanced, `TSval of ${c.connId} advances over ${spanMs} ms`);
    }
    assert.ok(checked >= CONNECTIONS / 4, `${checked} handshakes checked`);
    assert.ok(withTimestamps > 0, "some connections use timestamps");
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
