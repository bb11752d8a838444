/**
 * Graceful drain: SIGTERM to one instance after another while blobs and keys land (see mesh-faults.ts),
 * each one restarted by `cloudtap up` and answering again before the next: a rolling restart of every
 * stitcher, one by one, then of each fetcher, the key-broker, mirror-egress and nats-server. A stitcher on
 * SIGTERM flushes what it holds and acks only completed connections; the egress drops the copies of what a
 * rebuilt connection sends again, and resumes its file from its journal. Judged as the chaos test: every
 * connection complete and decrypted, and no duplicate packet in the file.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runMeshUnderFaults } from "./mesh-faults.js";

describe("mesh - graceful drain: SIGTERM to every instance in turn during load", () => {
  it("mesh - rolling restarts lose nothing and duplicate nothing", async () => {
    const plan = [
      "stitcher-1",
      "stitcher-2",
      "fetcher-1",
      "fetcher-2",
      "key-broker",
      "mirror-egress",
      "nats-server",
    ];
    const result = await runMeshUnderFaults({
      plan,
      signal: "SIGTERM",
      pauseMs: () => 1500,
      pick: () => 0,
      waitBack: true,
    });
    assert.deepEqual(
      result.signalled.map((s) => s.split("@")[0]),
      plan,
    );
    for (const name of plan) assert.ok((result.restarts[name] ?? 0) >= 1, `${name} was not restarted`);
    assert.equal(result.duplicates, 0, "no duplicate packet");
  });
});
