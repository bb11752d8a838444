import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createKeyStore, TlsOptionError } from "@cloudtap/tls";
import { BadClientRandomError, TooManyWaitersError } from "./errors.js";
import { createKeyBroker } from "./key-broker.js";
import { createMemoryVault } from "./secret-vault.js";

const random = (n: number) => new Uint8Array(32).fill(n);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const secret = (n: number, len: number) => "0" + n.toString(16).padStart(len * 2 - 1, "0");
const tls12 = (n: number, s = n) => `CLIENT_RANDOM ${hex(random(n))} ${secret(s, 48)}\n`;
const tls13 = (n: number) =>
  [
    `CLIENT_HANDSHAKE_TRAFFIC_SECRET ${hex(random(n))} ${secret(1, 32)}`,
    `SERVER_HANDSHAKE_TRAFFIC_SECRET ${hex(random(n))} ${secret(2, 32)}`,
    `CLIENT_TRAFFIC_SECRET_0 ${hex(random(n))} ${secret(3, 32)}`,
    `SERVER_TRAFFIC_SECRET_0 ${hex(random(n))} ${secret(4, 32)}`,
    "",
  ].join("\n");

describe("key-vault - key broker", () => {
  test("key-vault - ingest then lookup: lines per client random that the tls key store parses", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault() });
    const r = await broker.ingest(`# a comment\n${tls12(1)}${tls13(2)}garbage line\n`);
    assert.equal(r.clientRandoms, 2);
    assert.equal(r.added, 5);
    assert.equal(r.skippedLineCount, 1);
    const entries = await broker.lookup([random(1), random(2), random(3)]);
    assert.deepEqual(
      entries.map((e) => e.clientRandom[0]),
      [1, 2],
    );
    const store = createKeyStore();
    store.addKeyLog(entries.map((e) => e.keyLogLines).join(""), 0);
    assert.equal(store.lookup(random(1))?.CLIENT_RANDOM?.length, 48);
    assert.equal(store.lookup(random(2))?.SERVER_TRAFFIC_SECRET_0?.length, 32);
    assert.equal(broker.stats.lookupMisses, 1);
  });

  test("key-vault - merge: labels from two key logs join; another value is a candidate set, as the key store keeps it", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault() });
    const lines = tls13(5).split("\n");
    await broker.ingest(`${lines[0]}\n${lines[1]}\n`);
    await broker.ingest(`${lines[2]}\n${lines[3]}\n`);
    // Within one log as across logs: the second value of a label is kept as a further candidate.
    const merged = await broker.ingest(tls12(5, 9) + tls12(5, 10));
    assert.equal(merged.added, 1);
    assert.equal(merged.conflicts, 1);
    const again = await broker.ingest(tls12(5, 11) + tls12(5, 9) + tls12(5, 10));
    assert.equal(again.conflicts, 1, "the two known values are duplicates, the new one a candidate");
    assert.equal(again.added, 0);
    // The bound is the key store's: 4 sets, a fifth value is dropped and counted.
    const full = await broker.ingest(tls12(5, 12) + tls12(5, 13));
    assert.deepEqual([full.conflicts, full.candidatesDropped], [1, 1]);
    assert.deepEqual(
      [broker.stats.conflicts, broker.stats.candidatesDropped, broker.stats.secretsAdded],
      [3, 1, 5],
    );
    const [entry] = await broker.lookup([random(5)]);
    const got = entry!.keyLogLines.split("\n").filter(Boolean);
    assert.equal(got.length, 8, "four TLS 1.3 lines, then four CLIENT_RANDOM values");
    // The stitcher's key store parses the lines back into the same sets, the first value first.
    const store = createKeyStore();
    const parsed = store.addKeyLog(entry!.keyLogLines, 0);
    assert.deepEqual([parsed.added, parsed.conflicts, parsed.candidatesDropped], [5, 3, 0]);
    const sets = store.candidates(random(5));
    assert.deepEqual(
      sets.map((s) => Buffer.from(s.CLIENT_RANDOM!).toString("hex")),
      [9, 10, 11, 12].map((n) => secret(n, 48)),
    );
    for (const s of sets)
      assert.equal(s.SERVER_TRAFFIC_SECRET_0?.length, 32, "each set has the other labels");
    // A merge into the stored sets again changes nothing.
    const same = await broker.ingest(entry!.keyLogLines);
    assert.deepEqual([same.added, same.conflicts, same.candidatesDropped], [0, 0, 0]);
    assert.equal((await broker.lookup([random(5)]))[0]?.keyLogLines, entry!.keyLogLines);
  });

  test("key-vault - maxCandidates is the key store's bound: 1 keeps only the first value, 0 is refused", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault(), maxCandidates: 1 });
    const r = await broker.ingest(tls12(6, 1) + tls12(6, 2));
    assert.deepEqual([r.added, r.conflicts, r.candidatesDropped], [1, 0, 1]);
    assert.throws(() => createKeyBroker({ vault: createMemoryVault(), maxCandidates: 0 }), TlsOptionError);
  });

  test("key-vault - waitForKeys: resolves as soon as the keys land, or at the timeout with missing", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault() });
    await broker.ingest(tls12(1));
    const started = Date.now();
    const waiting = broker.waitForKeys([random(1), random(2)], 5000);
    setTimeout(() => void broker.ingest(tls12(2)), 50);
    const done = await waiting;
    assert.ok(Date.now() - started < 2000);
    assert.equal(done.entries.length, 2);
    assert.equal(done.missing.length, 0);

    const partial = await broker.waitForKeys([random(1), random(3)], 100);
    assert.deepEqual(
      partial.entries.map((e) => e.clientRandom[0]),
      [1],
    );
    assert.deepEqual(partial.missing, [random(3)]);
    assert.equal(broker.stats.waiters, 0);
    assert.equal(broker.stats.waitsReady, 1);
    assert.equal(broker.stats.waitsPartial, 1);
  });

  test("key-vault - waitForKeys: an aborted signal ends the wait; the waiter cap is enforced and counted", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault(), maxWaiters: 2 });
    const controller = new AbortController();
    const a = broker.waitForKeys([random(7)], 60_000, controller.signal);
    const b = broker.waitForKeys([random(7)], 60_000, controller.signal);
    await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(broker.waitForKeys([random(7)], 60_000), TooManyWaitersError);
    assert.equal(broker.stats.waitsOverflow, 1);
    controller.abort();
    assert.equal((await a).missing.length, 1);
    assert.equal((await b).missing.length, 1);
    assert.equal(broker.stats.waiters, 0);
  });

  test("key-vault - a key log of many client randoms wakes every waiter once its own keys are in", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault() });
    const waits = Array.from({ length: 200 }, (_, i) =>
      broker.waitForKeys([random(i), random((i + 1) % 200)], 5000),
    );
    await broker.ingest(Array.from({ length: 200 }, (_, i) => tls12(i)).join(""));
    const results = await Promise.all(waits);
    assert.ok(results.every((r) => r.missing.length === 0 && r.entries.length === 2));
    assert.equal(broker.stats.waiters, 0);
  });

  test("key-vault - bad input: a short client random is a bad-input error without key material", async () => {
    const broker = createKeyBroker({ vault: createMemoryVault() });
    await assert.rejects(broker.lookup([new Uint8Array(31)]), (err: unknown) => {
      assert.ok(err instanceof BadClientRandomError);
      assert.equal(err.category, "bad-input");
      return true;
    });
    const skipped = await broker.ingest(`CLIENT_RANDOM ${hex(random(1))} abc\n`);
    assert.ok(!JSON.stringify(skipped.skippedLines).includes(hex(random(1))));
  });
});
