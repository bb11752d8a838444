import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TlsArgumentError, TlsOptionError } from "./errors.js";
import { type KeyLogEntry, KeyLogLabel } from "./key-log.js";
import { createKeyStore, KEY_STORE_ENTRY_OVERHEAD_BYTES, KeyWaitStatus } from "./key-store.js";

function random(n: number): Uint8Array {
  const r = new Uint8Array(32);
  r[0] = n >> 8;
  r[1] = n & 0xff;
  return r;
}

function entry(
  n: number,
  label: KeyLogLabel,
  fill = 7,
  length = label === KeyLogLabel.ClientRandom ? 48 : 32,
): KeyLogEntry {
  return { label, clientRandom: random(n), secret: new Uint8Array(length).fill(fill), line: 1 };
}

describe("key store - index, TTL, byte cap", () => {
  it("key store - secrets are found by client random and copied in", () => {
    const store = createKeyStore();
    const e = entry(1, KeyLogLabel.ClientRandom);
    store.add([e], 0);
    e.secret.fill(0); // the caller's buffer may be reused
    assert.deepEqual(store.lookup(random(1))?.[KeyLogLabel.ClientRandom], new Uint8Array(48).fill(7));
    assert.equal(store.lookup(random(2)), undefined);
    assert.equal(store.lookup(new Uint8Array(31)), undefined);
    assert.ok(store.has(random(1), [KeyLogLabel.ClientRandom]));
    assert.ok(!store.has(random(1), [KeyLogLabel.ClientRandom, KeyLogLabel.ExporterSecret]));
  });

  it("key store - duplicates are counted, a conflicting value is kept as a second candidate set", () => {
    const store = createKeyStore();
    const r = store.add(
      [
        entry(1, KeyLogLabel.ServerTrafficSecret0, 1),
        entry(1, KeyLogLabel.ClientTrafficSecret0, 1),
        entry(1, KeyLogLabel.ServerTrafficSecret0, 1),
        entry(1, KeyLogLabel.ServerTrafficSecret0, 2),
        entry(1, KeyLogLabel.ServerTrafficSecret0, 2),
      ],
      0,
    );
    assert.deepEqual(r, { added: 2, duplicates: 2, conflicts: 1, candidatesDropped: 0 });
    assert.equal(store.lookup(random(1))?.[KeyLogLabel.ServerTrafficSecret0]?.[0], 1, "lookup: the first");
    const sets = store.candidates(random(1));
    assert.deepEqual(
      sets.map((s) => [s[KeyLogLabel.ServerTrafficSecret0]?.[0], s[KeyLogLabel.ClientTrafficSecret0]?.[0]]),
      [
        [1, 1],
        [2, 1],
      ],
      "the second set has the conflicting value and the first set's other labels",
    );
    assert.equal(store.stats.conflicts, 1);
    assert.deepEqual(store.candidates(random(9)), []);
  });

  it("key store - candidate sets are capped (maxCandidates), what is beyond is counted", () => {
    const store = createKeyStore({ maxCandidates: 2 });
    const r = store.add(
      [1, 2, 3, 4].map((v) => entry(1, KeyLogLabel.ClientRandom, v)),
      0,
    );
    assert.deepEqual(r, { added: 1, duplicates: 0, conflicts: 1, candidatesDropped: 2 });
    assert.equal(store.candidates(random(1)).length, 2);
    assert.equal(store.stats.candidatesDropped, 2);
  });

  it("key store - entries expire after the TTL in the caller's time, counted", () => {
    const store = createKeyStore({ ttlMs: 1000 });
    store.add([entry(1, KeyLogLabel.ClientRandom)], 0);
    store.add([entry(2, KeyLogLabel.ClientRandom)], 500);
    assert.equal(store.expire(999), 0);
    assert.equal(store.expire(1000), 1);
    assert.equal(store.lookup(random(1)), undefined);
    assert.ok(store.lookup(random(2)));
    // A secret added later refreshes the entry.
    store.add([entry(2, KeyLogLabel.ExporterSecret)], 1400);
    assert.equal(store.expire(2000), 0);
    assert.equal(store.expire(2400), 1);
    assert.equal(store.stats.expiredEntries, 2);
    assert.equal(store.stats.entries, 0);
    assert.equal(store.stats.bytes, 0);
  });

  it("key store - the byte cap evicts the least recently updated entries, counted", () => {
    const per = 32 + 48 + KEY_STORE_ENTRY_OVERHEAD_BYTES;
    const store = createKeyStore({ maxBytes: per * 3 });
    for (let i = 0; i < 5; i++) store.add([entry(i, KeyLogLabel.ClientRandom)], i);
    assert.equal(store.stats.entries, 3);
    assert.equal(store.stats.evictedEntries, 2);
    assert.equal(store.stats.bytes, per * 3);
    assert.equal(store.lookup(random(0)), undefined);
    assert.equal(store.lookup(random(1)), undefined);
    assert.ok(store.lookup(random(4)));
  });

  it("key store - addKeyLog parses text and reports skipped lines", () => {
    const store = createKeyStore();
    const r = store.addKeyLog(`CLIENT_RANDOM ${"01".repeat(32)} ${"02".repeat(48)}\nbroken line\n`, 0);
    assert.equal(r.added, 1);
    assert.deepEqual(r.skippedLines, [{ line: 2, problem: "field-count" }]);
    assert.equal(store.stats.keyLogLinesSkipped, 1);
  });

  it("key store - invalid options are typed errors", () => {
    assert.throws(() => createKeyStore({ ttlMs: 0 }), TlsOptionError);
    assert.throws(() => createKeyStore({ maxBytes: -1 }), TlsOptionError);
    assert.throws(() => createKeyStore({ maxWaiters: 1.5 }), TlsOptionError);
  });
});

describe("key store - waitForKeys", () => {
  const both = [KeyLogLabel.ClientTrafficSecret0, KeyLogLabel.ServerTrafficSecret0];

  it("key store - resolves at once when the keys are there", async () => {
    const store = createKeyStore();
    store.add([entry(1, KeyLogLabel.ClientTrafficSecret0), entry(1, KeyLogLabel.ServerTrafficSecret0)], 0);
    const r = await store.waitForKeys(random(1), both);
    assert.equal(r.status, KeyWaitStatus.Ready);
  });

  it("key store - resolves when the last requested label lands (keys after the data)", async () => {
    const store = createKeyStore();
    let settled = false;
    const wait = store.waitForKeys(random(1), both, { deadlineMs: 10_000 }).then((r) => {
      settled = true;
      return r;
    });
    store.add([entry(1, KeyLogLabel.ClientTrafficSecret0)], 5);
    await Promise.resolve();
    assert.equal(settled, false);
    assert.equal(store.stats.waiters, 1);
    store.add([entry(1, KeyLogLabel.ServerTrafficSecret0)], 6);
    const r = await wait;
    assert.equal(r.status, KeyWaitStatus.Ready);
    assert.ok(r.secrets?.[KeyLogLabel.ServerTrafficSecret0]);
    assert.equal(store.stats.waiters, 0);
  });

  it("key store - the deadline passes when the caller's time reaches it", async () => {
    const store = createKeyStore();
    const wait = store.waitForKeys(random(1), both, { deadlineMs: 100 });
    store.add([entry(1, KeyLogLabel.ClientTrafficSecret0)], 50);
    assert.equal(store.stats.waiters, 1);
    store.expire(100);
    const r = await wait;
    assert.equal(r.status, KeyWaitStatus.Deadline);
    assert.ok(r.secrets?.[KeyLogLabel.ClientTrafficSecret0], "what is known is returned");
    assert.equal(
      (await store.waitForKeys(random(1), both, { deadlineMs: 100 })).status,
      KeyWaitStatus.Deadline,
    );
    assert.equal(store.stats.waitsDeadline, 2);
  });

  it("key store - an AbortSignal ends the wait", async () => {
    const store = createKeyStore();
    const controller = new AbortController();
    const wait = store.waitForKeys(random(1), both, { signal: controller.signal });
    controller.abort();
    assert.equal((await wait).status, KeyWaitStatus.Aborted);
    assert.equal(store.stats.waiters, 0);
    assert.equal(
      (await store.waitForKeys(random(1), both, { signal: controller.signal })).status,
      KeyWaitStatus.Aborted,
    );
  });

  it("key store - a client random that is not 32 bytes is a typed error", () => {
    assert.throws(() => createKeyStore().waitForKeys(new Uint8Array(31), both), TlsArgumentError);
  });

  it("key store - waiters beyond the cap resolve with overflow", async () => {
    const store = createKeyStore({ maxWaiters: 1 });
    const first = store.waitForKeys(random(1), both);
    assert.equal((await store.waitForKeys(random(2), both)).status, KeyWaitStatus.Overflow);
    store.add([entry(1, KeyLogLabel.ClientTrafficSecret0), entry(1, KeyLogLabel.ServerTrafficSecret0)], 0);
    assert.equal((await first).status, KeyWaitStatus.Ready);
    assert.equal(store.stats.waitsOverflow, 1);
  });
});
