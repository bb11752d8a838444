/** Listing a store that holds what a tapper would not write: nothing is skipped unseen. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openStore } from "@cloudtap/object-store";
import { dataBlobKey, keyLogKey } from "@cloudtap/tap-format";
import { listBlobs } from "./blob-listing.js";
import { readKeyLogs } from "./key-logs.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-listing-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const T0 = 1_764_000_000_000_000_000n;

describe("fetch - hostile listings", () => {
  it("symlinked blobs and key logs are reported, never followed; .ctap keys off the layout are listed", async () => {
    const root = join(dir, "store");
    const secret = join(dir, "outside.txt");
    writeFileSync(secret, "CLIENT_RANDOM 00 11\n");
    const real = dataBlobKey("", "gw", T0, 1n);
    const linked = dataBlobKey("", "gw", T0, 2n);
    const linkedKeys = keyLogKey("", "gw", T0, 3n);
    for (const k of [real, linked, linkedKeys, "data/loose/odd-name.ctap"])
      mkdirSync(join(root, ...k.split("/").slice(0, -1)), { recursive: true });
    writeFileSync(join(root, ...real.split("/")), "x");
    writeFileSync(join(root, "data", "loose", "odd-name.ctap"), "x");
    symlinkSync(secret, join(root, ...linked.split("/")));
    symlinkSync(secret, join(root, ...linkedKeys.split("/")));
    const store = openStore(root);

    const listed = [];
    for await (const b of listBlobs(store)) listed.push(b);
    assert.deepEqual(listed.map((b) => b.key).sort(), ["data/loose/odd-name.ctap", linked, real].sort());
    const link = listed.find((b) => b.key === linked)!;
    await assert.rejects(link.readBytes!(), /symbolic link/);

    const keys = await readKeyLogs(store);
    assert.deepEqual(keys.keyLogs, []);
    assert.deepEqual(
      keys.problems.map((p) => [p.blob, p.kind]),
      [[linkedKeys, "read-failed"]],
    );
  });
});
