/**
 * Invariant 7 on simulated traffic (two tappers, small blobs, TLS with keys): for every variant the
 * stitched capture is in time order (capinfos "Strict time order: True"), no packet of a flow is stamped
 * before one it follows or acknowledges, and after reordercap (a no-op now) tshark sees no lost, unseen or
 * retransmitted segment on complete flows.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { createPcapngEncoder, readCapture } from "@cloudtap/pcap";
import { keysPrefix } from "@cloudtap/tap-format";
import { runSimulation } from "@cloudtap/tapsim";
import { tshark } from "@cloudtap/test-harness";
import { createKeyStore } from "@cloudtap/tls";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";
import type { Variant } from "./tls-variant.js";

const CONNECTIONS = Number(process.env["STITCH_ORDER_CONNECTIONS"] ?? 60);

/** Packet timestamps of a capture file, in file order. */
async function timestamps(file: string): Promise<bigint[]> {
  const out: bigint[] = [];
  const bytes = readFileSync(file);
  for await (const item of readCapture(
    (async function* () {
      yield new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    })(),
  )) {
    if (item.type === "packet") out.push(item.timestampNs);
  }
  return out;
}

function backwardSteps(ts: readonly bigint[]): number {
  let n = 0;
  for (let i = 1; i < ts.length; i++) if (ts[i]! < ts[i - 1]!) n++;
  return n;
}

describe("stitch - time order on simulated traffic (two tappers)", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-order-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const storeDir = join(dir, "store");
  const simulated = (async () => {
    const store = openStore(storeDir);
    await runSimulation({
      dataStore: store,
      keyStore: store,
      connections: CONNECTIONS,
      seed: 31,
      blobSize: 64 * 1024,
    });
    return store;
  })();

  for (const variant of ["original", "cleartext", "both"] as const satisfies readonly Variant[]) {
    it(`stitch - ${variant}: strict time order, causal per flow, clean after reordercap`, async () => {
      const store = await simulated;
      const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
      for await (const o of store.list(keysPrefix(""))) keys.addKeyLog(await store.readBytes(o.key), 0);
      const listed = [];
      for await (const b of listBlobs(store)) listed.push(b);
      const encoder = createPcapngEncoder({ linkType: 1 });
      const stitcher = new Stitcher({
        sink: encoder,
        tls: { keys, variant, embedKeys: (text) => encoder.writeTlsKeyLog(text) },
      });
      const file = join(dir, `${variant}.pcapng`);
      const out = createWriteStream(file);
      await runStitchJob({
        blobs: (async function* () {
          yield* sortBlobsByTime(listed);
        })(),
        stitcher,
        output: encoder,
        sink: { write: (c) => void out.write(c) },
      });
      out.end();
      await once(out, "finish");

      const ts = await timestamps(file);
      assert.ok(ts.length > 1000, `${ts.length} packets`);
      assert.equal(backwardSteps(ts), 0, "packets in time order");

      const capinfos = execFileSync("capinfos", ["-o", "-M", file], { encoding: "utf8" });
      assert.match(capinfos, /Strict time order:\s+True/);

      const sorted = join(dir, `${variant}-sorted.pcapng`);
      execFileSync("reordercap", [file, sorted], { stdio: "ignore" });
      const flagged = tshark([
        "-n",
        "-r",
        sorted,
        "-Y",
        "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.retransmission || " +
          "tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission",
        "-T",
        "fields",
        "-e",
        "frame.number",
      ]).trim();
      assert.equal(flagged, "", "no lost, unseen or retransmitted segment after reordercap");
    });
  }
});
