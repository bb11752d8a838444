import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BucketName, type Bus, connectBus, ensureKv } from "@cloudtap/bus";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { UnsealError } from "./errors.js";
import { openNatsVault } from "./nats-vault.js";

const key = new Uint8Array(32).fill(3);
const hex = "11".repeat(32);
const lines = `CLIENT_RANDOM ${hex} ${"ab".repeat(48)}\n`;

describe("key-vault - NATS vault", () => {
  let nats: NatsServer;
  let bus: Bus;
  before(async () => {
    nats = await startNatsServer();
    bus = await connectBus({ servers: nats.url, name: "key-vault-test" });
  });
  after(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  test("key-vault - NATS vault: values sealed at rest, durable across reopen, bucket max age is the TTL", async () => {
    const vault = await openNatsVault(bus, { key, ttlMs: 60_000 });
    assert.equal(await vault.get(hex), undefined);
    await vault.put(hex, lines);
    assert.equal(await vault.get(hex), lines);

    const kv = await ensureKv(bus.js, BucketName.Keys, { ttlMs: 60_000 });
    const raw = await kv.get(hex);
    assert.ok(raw && raw.value.length > 0);
    assert.ok(!Buffer.from(raw.value).includes(Buffer.from("ab".repeat(48))), "no secret in the clear");
    assert.ok(!Buffer.from(raw.value).includes(Buffer.from("CLIENT_RANDOM")));
    const status = await kv.status();
    assert.equal(status.ttl, 60_000);

    const reopened = await openNatsVault(bus, { key, ttlMs: 60_000 });
    assert.equal(await reopened.get(hex), lines);
    const wrongKey = await openNatsVault(bus, { key: new Uint8Array(32).fill(4), ttlMs: 60_000 });
    await assert.rejects(wrongKey.get(hex), UnsealError);

    // Another TTL at the next start is applied to the existing bucket.
    await openNatsVault(bus, { key, ttlMs: 120_000 });
    assert.equal((await kv.status()).ttl, 120_000);
    assert.equal(await reopened.get(hex), lines);
  });
});
