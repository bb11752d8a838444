/**
 * Scale-out while running: `cloudtap up --elastic-shards` (the stitchers share the 4 shards by lease in
 * NATS KV) while blobs and keys land (see mesh-faults.ts); a third stitcher process is started beside the
 * two `up` runs, takes its share of the shards, and later stops with SIGTERM, giving them back. Judged as
 * the chaos and drain tests: every connection complete and decrypted, as one-process `cloudtap stitch`
 * writes it, and no packet twice in the file (the handed-over shards' open connections are rebuilt by
 * their new owner and the egress drops what it had written of them).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runMeshUnderFaults } from "./mesh-faults.js";

describe("mesh - scale-out: a stitcher added and removed while running", () => {
  it("mesh - the shards rebalance, nothing lost, nothing written twice", async () => {
    const result = await runMeshUnderFaults({
      plan: ["+stitcher", "-stitcher"],
      signal: "SIGTERM",
      pauseMs: () => 3000,
      pick: () => 0,
      elastic: true,
    });
    assert.deepEqual(
      result.signalled.map((s) => s.split("@")[0]),
      ["+stitcher", "-stitcher"],
    );
    assert.equal(result.duplicates, 0, "no duplicate packet");
  });
});
