import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { DirectoryStore } from "@cloudtap/object-store";
import { keyLogKey } from "@cloudtap/tap-format";
import { createMemoryCursorStore } from "./cursor-store.js";
import { createKeyLogWatcher } from "./key-log-watcher.js";

const HOUR_NS = 3_600_000_000_000n;
const t0 = 1_767_225_600_000_000_000n; // 2026-01-01T00:00:00Z
const enc = new TextEncoder();

describe("key-vault - key-log watcher", () => {
  let dir = "";
  let store: DirectoryStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cloudtap-keys-"));
    store = new DirectoryStore(dir);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("key-vault - watcher: reads new key logs once, late ones within the lateness window, rewritten ones again", async () => {
    const read: string[] = [];
    const cursor = createMemoryCursorStore();
    const watcher = createKeyLogWatcher({
      store,
      prefix: "tap",
      cursor,
      latenessNs: HOUR_NS,
      onKeyLog: (key, text) => {
        read.push(`${key.split("/").slice(-2).join("/")}=${text.trim()}`);
      },
    });
    await store.write(keyLogKey("tap", "b", t0 + 2n * HOUR_NS, 1n), enc.encode("one"));
    await store.write(keyLogKey("tap", "b", t0 + 2n * HOUR_NS, 2n, true), gzipSync("two"));
    await store.write("tap/keys/README.txt", enc.encode("not a key log"));
    await watcher.poll();
    assert.equal(read.length, 2);
    assert.match(read[1]!, /=two$/);
    assert.equal(cursor.value, keyLogKey("tap", "b", t0 + 2n * HOUR_NS, 2n, true));

    await watcher.poll();
    assert.equal(read.length, 2, "nothing new: nothing read");

    // Late: tapper "a" sorts before "b" in the same hour; one hour back is inside the window, three are not.
    await store.write(keyLogKey("tap", "a", t0 + 2n * HOUR_NS, 9n), enc.encode("late"));
    await store.write(keyLogKey("tap", "a", t0 + HOUR_NS, 9n), enc.encode("an hour late"));
    await store.write(keyLogKey("tap", "a", t0 - HOUR_NS, 9n), enc.encode("too late"));
    await watcher.poll();
    assert.deepEqual(
      read.slice(2).map((r) => r.split("=")[1]),
      ["an hour late", "late"],
    );

    await new Promise((r) => setTimeout(r, 20));
    await store.write(keyLogKey("tap", "b", t0 + 2n * HOUR_NS, 1n), enc.encode("one, longer now"));
    await watcher.poll();
    assert.deepEqual(
      read.slice(4).map((r) => r.split("=")[1]),
      ["one, longer now"],
    );
    assert.equal(watcher.stats.keyLogsRead, 5);
  });

  test("key-vault - watcher: a restarted watcher starts from the saved cursor, less the lateness", async () => {
    const read: string[] = [];
    const watcher = createKeyLogWatcher({
      store,
      prefix: "tap",
      cursor: createMemoryCursorStore(keyLogKey("tap", "b", t0 + 2n * HOUR_NS, 2n, true)),
      latenessNs: HOUR_NS,
      onKeyLog: (key) => {
        read.push(key);
      },
    });
    await watcher.poll();
    // The hour of the cursor and the one before are read again (merging makes that harmless); older is not.
    assert.ok(read.length >= 4);
    assert.ok(!read.includes(keyLogKey("tap", "a", t0 - HOUR_NS, 9n)));
  });

  test("key-vault - watcher: a key log that fails is a problem, and is tried again next poll", async () => {
    const problems: string[] = [];
    let fail = true;
    const watcher = createKeyLogWatcher({
      store,
      prefix: "other",
      cursor: createMemoryCursorStore(),
      onKeyLog: () => {
        if (fail) throw new Error("vault down");
      },
      onProblem: (key) => problems.push(key),
    });
    await store.write(keyLogKey("other", "x", t0, 1n), enc.encode("k"));
    await store.write(keyLogKey("other", "x", t0, 2n, true), enc.encode("not gzip"));
    await watcher.poll();
    assert.equal(problems.length, 2);
    fail = false;
    await watcher.poll();
    assert.equal(problems.length, 3, "the bad gzip fails again, the other one is read");
    assert.equal(watcher.stats.keyLogsRead, 1);
  });
});
