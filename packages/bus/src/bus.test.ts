/**
 * The NATS wiring against a real nats-server (Debian's, JetStream with file storage in a temporary
 * directory): message-id de-duplication, redelivery after the ack wait, KV with TTL, pending counts, a full
 * stream as a typed error, and data surviving a server restart.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { type Bus, connectBus } from "./connect.js";
import { type BusMessage, consumeMessages, consumerPending, ensureConsumer } from "./consumer.js";
import { StreamFullError } from "./errors.js";
import {
  getHeader,
  getTraceContext,
  MeshHeader,
  makeHeaders,
  parseTraceParent,
  setTraceContext,
} from "./headers.js";
import { ensureKv, getJson, putJson } from "./kv.js";
import { publishWithId } from "./publish.js";
import { ensureStream, ensureStreams } from "./streams.js";
import { blobSubject, chunkSubject, StreamName } from "./subjects.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function take(stream: AsyncIterable<BusMessage>, n: number, timeoutMs = 10_000): Promise<BusMessage[]> {
  const out: BusMessage[] = [];
  const timer = setTimeout(
    () => assert.fail(`only ${out.length} of ${n} messages within ${timeoutMs} ms`),
    timeoutMs,
  );
  try {
    for await (const m of stream) {
      out.push(m);
      if (out.length === n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

describe("bus - NATS JetStream wiring against a real nats-server", () => {
  let server: NatsServer;
  let bus: Bus;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    bus = await connectBus({ servers: server.url, name: "bus-test", backoff: { initialMs: 50, maxMs: 500 } });
    await ensureStreams(bus.jsm, { duplicateWindowMs: 60_000 });
  });
  after(async () => {
    await bus?.close();
    await server?.cleanup();
  });

  it("bus - ensureStreams is idempotent and sets retention, storage, duplicate window", async () => {
    const again = await ensureStreams(bus.jsm, { duplicateWindowMs: 60_000, chunksMaxBytes: 1 << 30 });
    assert.equal(again.blobs.config.retention, "workqueue");
    assert.equal(again.blobs.config.storage, "file");
    assert.deepEqual(again.blobs.config.subjects, ["ctap.blobs.>"]);
    assert.equal(again.chunks.config.retention, "workqueue");
    assert.equal(again.chunks.config.discard, "new");
    assert.equal(again.chunks.config.max_bytes, 1 << 30);
    assert.equal(again.chunks.config.duplicate_window, 60_000 * 1_000_000);
  });

  it("bus - a message id is stored once; headers and trace context travel", async () => {
    const subject = chunkSubject("dedupe", 3);
    const h = makeHeaders({ [MeshHeader.Blob]: "data/a.ctap", [MeshHeader.Batch]: "0" });
    const ctx = parseTraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert.ok(ctx);
    setTraceContext(h, ctx);
    const first = await publishWithId(bus.js, subject, enc.encode("one"), { msgId: "a#3#0", headers: h });
    const second = await publishWithId(bus.js, subject, enc.encode("one again"), {
      msgId: "a#3#0",
      headers: h,
    });
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.seq, first.seq);
    await ensureConsumer(bus.jsm, StreamName.Chunks, "dedupe-reader", { filterSubject: subject });
    const stream = await consumeMessages(bus.js, StreamName.Chunks, "dedupe-reader", { maxMessages: 10 });
    const [m] = await take(stream, 1);
    assert.equal(dec.decode(m!.data), "one");
    assert.equal(getHeader(m!.headers, MeshHeader.Blob), "data/a.ctap");
    assert.deepEqual(getTraceContext(m!.headers), ctx);
    // ackAck: the count below must not race the ack (a plain ack is not confirmed).
    assert.ok(await m!.ackAck());
    await stream.stop();
    const pending = await consumerPending(bus.jsm, StreamName.Chunks, "dedupe-reader");
    assert.equal(pending.total, 0);
  });

  it("bus - an unacked message is redelivered after the ack wait; working() holds it", async () => {
    const subject = blobSubject("redeliver");
    await ensureConsumer(bus.jsm, StreamName.Blobs, "redeliver", { filterSubject: subject, ackWaitMs: 1000 });
    await publishWithId(bus.js, subject, enc.encode("blob-1"), { msgId: "redeliver:blob-1" });
    const stream = await consumeMessages(bus.js, StreamName.Blobs, "redeliver", { maxMessages: 1 });
    const it = stream[Symbol.asyncIterator]();
    const first = (await it.next()).value as BusMessage;
    assert.equal(first.deliveryCount, 1);
    // Held for 2.5 ack waits with working() every 400 ms: no redelivery.
    const heldUntil = Date.now() + 2500;
    while (Date.now() < heldUntil) {
      first.working();
      await new Promise((r) => setTimeout(r, 400));
    }
    const p = await consumerPending(bus.jsm, StreamName.Blobs, "redeliver");
    assert.deepEqual([p.pending, p.ackPending], [0, 1]);
    // Now dropped without an ack: it comes back after the ack wait.
    const started = Date.now();
    const again = (await it.next()).value as BusMessage;
    assert.equal(dec.decode(again.data), "blob-1");
    assert.equal(again.deliveryCount, 2);
    assert.ok(Date.now() - started >= 500, "redelivered only after the ack wait");
    assert.equal(await again.ackAck(), true);
    await stream.stop();
    assert.equal((await consumerPending(bus.jsm, StreamName.Blobs, "redeliver")).total, 0);
    // Work-queue retention: the acked message is gone from the stream.
    const info = await bus.jsm.streams.info(StreamName.Blobs, { subjects_filter: subject });
    assert.equal(info.state.subjects?.[subject] ?? 0, 0);
  });

  it("bus - pending counts: not yet delivered and delivered-unacked", async () => {
    const subject = blobSubject("pending");
    await ensureConsumer(bus.jsm, StreamName.Blobs, "pending", { filterSubject: subject });
    for (let i = 0; i < 5; i++)
      await publishWithId(bus.js, subject, enc.encode(`b${i}`), { msgId: `p:${i}` });
    assert.deepEqual(await consumerPending(bus.jsm, StreamName.Blobs, "pending"), {
      pending: 5,
      ackPending: 0,
      total: 5,
    });
    const stream = await consumeMessages(bus.js, StreamName.Blobs, "pending", { maxMessages: 2 });
    const got = await take(stream, 2);
    await got[0]!.ackAck();
    const p = await consumerPending(bus.jsm, StreamName.Blobs, "pending");
    assert.equal(p.total, 4);
    assert.ok(p.ackPending >= 1);
    await stream.stop();
  });

  it("bus - KV put/get and a TTL bucket that forgets", async () => {
    const kv = await ensureKv(bus.js, "test_state");
    await putJson(kv, "live.a", { state: "done", batches: 2 });
    assert.deepEqual(await getJson(kv, "live.a"), { state: "done", batches: 2 });
    assert.equal(await getJson(kv, "live.missing"), undefined);
    const ttl = await ensureKv(bus.js, "test_ttl", { ttlMs: 1000 });
    await putJson(ttl, "k", 1);
    assert.equal(await getJson(ttl, "k"), 1);
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await getJson(ttl, "k"), undefined);
  });

  it("bus - a full stream (discard new) is a StreamFullError, not a silent drop", async () => {
    await ensureStream(bus.jsm, {
      name: "TEST_SMALL",
      subjects: ["test.small.>"],
      max_bytes: 4096,
      discard: "new",
      storage: "file",
    });
    const body = new Uint8Array(1000);
    let stored = 0;
    await assert.rejects(async () => {
      for (let i = 0; i < 20; i++) {
        await publishWithId(bus.js, "test.small.x", body, { msgId: `s${i}` });
        stored++;
      }
    }, StreamFullError);
    assert.ok(stored >= 1 && stored < 5, `stored ${stored}`);
  });

  it("bus - streams, consumers and KV survive a server restart; the client reconnects", async () => {
    const subject = chunkSubject("restart", 0);
    await ensureConsumer(bus.jsm, StreamName.Chunks, "restart", { filterSubject: subject });
    await publishWithId(bus.js, subject, enc.encode("before"), { msgId: "restart#0" });
    const kv = await ensureKv(bus.js, "test_restart");
    await putJson(kv, "cursor", "data/x");
    const oldPid = server.pid;
    await server.restart();
    assert.notEqual(server.pid, oldPid);
    // publishWithId retries until the client has reconnected and the stream is back.
    await publishWithId(bus.js, subject, enc.encode("after"), { msgId: "restart#1" });
    const dup = await publishWithId(bus.js, subject, enc.encode("before"), { msgId: "restart#0" });
    assert.equal(dup.duplicate, true, "the duplicate window survived the restart");
    assert.equal(await getJson(kv, "cursor"), "data/x");
    const stream = await consumeMessages(bus.js, StreamName.Chunks, "restart", { maxMessages: 10 });
    const got = await take(stream, 2);
    assert.deepEqual(
      got.map((m) => dec.decode(m.data)),
      ["before", "after"],
    );
    for (const m of got) m.ack();
    await stream.stop();
  });
});
