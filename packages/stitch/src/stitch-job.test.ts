/** The stitch job's own duties: a blob that cannot be read is reported by name and the run goes on. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type BlobSource, listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { createPcapngEncoder } from "@cloudtap/pcap";
import {
  CloseInitiator,
  CloseReason,
  createCtapWriter,
  Direction,
  dataBlobKey,
  MemorySink,
  Transport,
} from "@cloudtap/tap-format";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-job-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const T0 = 1_764_000_000_000_000_000n;

/** Blob i holds connection i: open, 4 KiB each way, close. */
async function writeBlobs(storeDir: string, count: number): Promise<void> {
  const store = openStore(storeDir);
  for (let i = 0; i < count; i++) {
    const sink = new MemorySink();
    const start = T0 + BigInt(i) * 1_000_000_000n;
    const w = createCtapWriter(sink, { tapperId: "gw-test", sequence: BigInt(i), startNs: start });
    const connId = i.toString(16).padStart(32, "0");
    await w.write({
      type: "conn-open",
      connId,
      timestampNs: start,
      transport: Transport.Tcp,
      ipVersion: 4,
      client: { address: "10.0.0.1", port: 40000 + i },
      server: { address: "192.0.2.1", port: 80 },
      midstream: false,
      tcp: {},
      attributes: {},
    });
    for (const direction of [Direction.ClientToServer, Direction.ServerToClient]) {
      await w.write({
        type: "data",
        connId,
        direction,
        offset: 0,
        timestampNs: start + 1_000n,
        spanNs: 0,
        payload: new Uint8Array(4096).fill(i),
      });
    }
    await w.write({
      type: "conn-close",
      connId,
      timestampNs: start + 2_000n,
      reason: CloseReason.Fin,
      initiator: CloseInitiator.Client,
      bytesClientToServer: 4096,
      bytesServerToClient: 4096,
    });
    await w.finish(start + 3_000n);
    await store.write(dataBlobKey("", "gw-test", start, BigInt(i)), sink.bytes());
  }
}

describe("stitch - the stitch job", () => {
  it("a blob whose read fails is reported by name; the blobs around it are stitched", async () => {
    const storeDir = join(dir, "store");
    await writeBlobs(storeDir, 5);
    const listed: BlobSource[] = [];
    for await (const b of listBlobs(openStore(storeDir))) listed.push(b);
    const blobs = sortBlobsByTime(listed).map((b, i) =>
      i === 2
        ? {
            ...b,
            readBytes: () => Promise.reject(new Error("disk gone")),
            read: () => ({
              [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error("disk gone")) }),
            }),
          }
        : b,
    );
    const encoder = createPcapngEncoder({ linkType: 1 });
    const stitcher = new Stitcher({ sink: encoder });
    const report = await runStitchJob({
      blobs: (async function* () {
        yield* blobs;
      })(),
      stitcher,
      output: encoder,
      sink: { write: () => {} },
    });
    assert.deepEqual(
      report.problems.map((p) => [p.blob, p.kind, p.message]),
      [[blobs[2]!.key, "read-failed", "disk gone"]],
    );
    assert.equal(stitcher.stats.flowsTcp, 4, "the other four connections");
    assert.equal(report.payloadBytes, 4 * 2 * 4096);
  });
});
