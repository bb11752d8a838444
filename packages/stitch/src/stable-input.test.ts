/**
 * `stableInput`: the direction merge keeps views of the records' payloads instead of copies (the mesh's
 * stitcher, whose chunk messages' bytes are never reused). The output is the same bytes as with copies, for
 * a store whose blobs are given in a shuffled order (so the merge holds much); and the option is what makes
 * the views safe: a caller that reuses its buffers after `accept` must not set it (shown by overwriting the
 * payloads after each blob, which changes the views' output and not the copies').
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { readCtap, type TapRecord } from "@cloudtap/tap-format";
import { runSimulation } from "@cloudtap/tapsim";
import { Stitcher } from "./stitcher.js";
import { parsingSink } from "./test-frame-sink.js";

/** A sink that hashes every frame with its time, in order (the stitch tests' parsing sink, one item a frame). */
function hashingSink() {
  const h = createHash("sha256");
  const sink = parsingSink((frame, _view, _tcp, ns) => {
    h.update(frame);
    h.update(String(ns));
    return true;
  });
  return { sink, digest: () => h.digest("hex"), frames: () => sink.items.length };
}

async function stitch(
  blobs: readonly Uint8Array[],
  stableInput: boolean,
  scribble: boolean,
): Promise<{ digest: string; frames: number; heldEvents: number }> {
  const out = hashingSink();
  const stitcher = new Stitcher({ sink: out.sink, reorderWindowNs: 60_000_000_000n, stableInput });
  for (const blob of blobs) {
    // Each blob in a buffer of its own, as a chunk message is.
    const own = blob.slice();
    const records: TapRecord[] = [];
    for await (const item of readCtap([own], { onCorruption: "resync" })) {
      if (item.type === "corruption" || item.type === "header" || item.type === "blob-end") continue;
      records.push(item);
    }
    for (const r of records) stitcher.accept(r);
    stitcher.flushOlderThan(stitcher.table.now - 60_000_000_000n);
    if (scribble) own.fill(0x5a);
  }
  stitcher.flushAll();
  return { digest: out.digest(), frames: out.frames(), heldEvents: stitcher.stats.heldEvents };
}

describe("stitch - stable input", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stable-input-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("held events keep views of the payloads: the same output as copies, and only safe with buffers not reused", async () => {
    const store = openStore(dir);
    await runSimulation({ dataStore: store, keyStore: store, connections: 24, seed: 9, blobSize: 32 * 1024 });
    const keys = [];
    for await (const b of listBlobs(store)) keys.push(b.key);
    const blobs = await Promise.all(keys.map((k) => store.readBytes(k)));
    // Out of time order: every other blob first, so a connection's later records come before its earlier ones.
    const shuffled = [...blobs.filter((_, i) => i % 2 === 1), ...blobs.filter((_, i) => i % 2 === 0)];
    const copies = await stitch(shuffled, false, false);
    const views = await stitch(shuffled, true, false);
    assert.ok(copies.heldEvents > 100, `the merge held ${copies.heldEvents} events`);
    assert.ok(copies.frames > 1000);
    assert.equal(views.frames, copies.frames);
    assert.equal(views.digest, copies.digest);
    // Buffers overwritten after each blob: copies do not care, views do.
    assert.equal((await stitch(shuffled, false, true)).digest, copies.digest);
    assert.notEqual((await stitch(shuffled, true, true)).digest, copies.digest);
  });
});
