/**
 * CTAP_CHUNKS retention against a real nats-server: a batch is removed once acked (work-queue retention),
 * so a byte limit smaller than everything a run writes bounds the backlog without refusing the run; an
 * unacked batch (its stitcher killed) survives and is redelivered; a stream an older version made with
 * limits retention is made again once consumed, never while it holds unconsumed data; `removeRun` removes
 * a finished replay's consumers and leftovers and nothing of the live run.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { type Bus, connectBus } from "./connect.js";
import { type BusMessage, consumeMessages, ensureConsumer } from "./consumer.js";
import { isStreamFull, StreamRetentionMismatchError } from "./errors.js";
import { publishWithId } from "./publish.js";
import { ensureStreams, removeRun } from "./streams.js";
import { blobSubject, chunkSubject, fetcherConsumer, StreamName, stitcherConsumer } from "./subjects.js";

async function take(stream: AsyncIterable<BusMessage>, n: number, timeoutMs = 20_000): Promise<BusMessage[]> {
  const out: BusMessage[] = [];
  const timer = setTimeout(
    () => assert.fail(`only ${out.length} of ${n} messages in ${timeoutMs} ms`),
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

const messagesOn = async (bus: Bus, stream: string, subject: string) =>
  (await bus.jsm.streams.info(stream, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;

describe("bus - CTAP_CHUNKS retention against a real nats-server", () => {
  let server: NatsServer;
  let bus: Bus;
  before(async () => {
    server = await startNatsServer({ jetstream: true });
    bus = await connectBus({
      servers: server.url,
      name: "streams-test",
      backoff: { initialMs: 50, maxMs: 500 },
    });
  });
  after(async () => {
    await bus?.close();
    await server?.cleanup();
  });

  it("a limits-retention CTAP_CHUNKS with unconsumed data is refused by name, then made again once consumed", async () => {
    // What an older version made.
    await bus.jsm.streams.add({
      name: StreamName.Chunks,
      subjects: ["ctap.chunks.>"],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
    });
    const subject = chunkSubject("old", 0);
    await ensureConsumer(bus.jsm, StreamName.Chunks, stitcherConsumer("old", 0), { filterSubject: subject });
    await publishWithId(bus.js, subject, new Uint8Array(10), { msgId: "old#0" });
    await assert.rejects(ensureStreams(bus.jsm), (err: unknown) => {
      assert.ok(err instanceof StreamRetentionMismatchError);
      assert.match(err.message, /CTAP_CHUNKS has limits retention, the mesh needs workqueue/);
      assert.match(err.message, /stitch-old-0 \(1 pending, 0 unacked\)/);
      return true;
    });
    assert.equal(await messagesOn(bus, StreamName.Chunks, subject), 1, "nothing deleted");
    const stream = await consumeMessages(bus.js, StreamName.Chunks, stitcherConsumer("old", 0));
    const [m] = await take(stream, 1);
    assert.ok(await m!.ackAck());
    await stream.stop();
    const { chunks } = await ensureStreams(bus.jsm);
    assert.equal(chunks.config.retention, RetentionPolicy.Workqueue);
  });

  it("a byte limit below the run's total: acked batches are removed, no publish is refused", async () => {
    const limit = 256 * 1024;
    const { chunks } = await ensureStreams(bus.jsm, { chunksMaxBytes: limit });
    assert.equal(chunks.config.max_bytes, limit);
    const subject = chunkSubject("limit", 0);
    const durable = stitcherConsumer("limit", 0);
    await ensureConsumer(bus.jsm, StreamName.Chunks, durable, { filterSubject: subject });
    const stream = await consumeMessages(bus.js, StreamName.Chunks, durable, { maxMessages: 4 });
    const it = stream[Symbol.asyncIterator]();
    const batch = new Uint8Array(32 * 1024);
    const total = 64; // 2 MiB in all, 8 times the limit
    let refused = 0;
    for (let i = 0; i < total; i++) {
      await publishWithId(bus.js, subject, batch, { msgId: `limit#${i}` }).catch((err: unknown) => {
        if (isStreamFull(err)) refused++;
        else throw err;
      });
      const m = (await it.next()).value as BusMessage;
      assert.ok(await m.ackAck());
    }
    await stream.stop();
    assert.equal(refused, 0, "publishes refused");
    assert.equal(await messagesOn(bus, StreamName.Chunks, subject), 0, "acked batches removed");
  });

  it("an unacked batch survives its consumer's end and is redelivered; acked, it is removed", async () => {
    const subject = chunkSubject("killed", 1);
    const durable = stitcherConsumer("killed", 1);
    await ensureStreams(bus.jsm);
    await ensureConsumer(bus.jsm, StreamName.Chunks, durable, { filterSubject: subject, ackWaitMs: 1000 });
    await publishWithId(bus.js, subject, new TextEncoder().encode("held"), { msgId: "killed#0" });
    const first = await consumeMessages(bus.js, StreamName.Chunks, durable, { maxMessages: 1 });
    const [held] = await take(first, 1);
    assert.equal(held!.deliveryCount, 1);
    await first.stop(); // the stitcher dies holding it, never acked
    assert.equal(await messagesOn(bus, StreamName.Chunks, subject), 1);
    const second = await consumeMessages(bus.js, StreamName.Chunks, durable, { maxMessages: 1 });
    const [again] = await take(second, 1);
    assert.equal(new TextDecoder().decode(again!.data), "held");
    assert.equal(again!.deliveryCount, 2);
    assert.ok(await again!.ackAck());
    await second.stop();
    assert.equal(await messagesOn(bus, StreamName.Chunks, subject), 0);
  });

  it("removeRun removes a replay's consumers and leftovers, nothing of the live run", async () => {
    await ensureStreams(bus.jsm);
    const run = "r0test";
    for (const r of [run, "live"]) {
      await ensureConsumer(bus.jsm, StreamName.Blobs, fetcherConsumer(r), { filterSubject: blobSubject(r) });
      await publishWithId(bus.js, blobSubject(r), new Uint8Array(1), { msgId: `${r}:b` });
      for (const shard of [0, 1]) {
        await ensureConsumer(bus.jsm, StreamName.Chunks, stitcherConsumer(r, shard), {
          filterSubject: chunkSubject(r, shard),
        });
        await publishWithId(bus.js, chunkSubject(r, shard), new Uint8Array(1), { msgId: `${r}#${shard}` });
      }
    }
    const removed = await removeRun(bus.jsm, run);
    assert.deepEqual(removed, { consumersDeleted: 3, messagesPurged: 3 });
    const names = async (stream: string) => {
      const out: string[] = [];
      for await (const c of bus.jsm.consumers.list(stream)) out.push(c.name);
      return out.sort();
    };
    assert.deepEqual(await names(StreamName.Blobs), [fetcherConsumer("live")]);
    assert.ok(!(await names(StreamName.Chunks)).some((n) => n.includes(run)));
    assert.equal(await messagesOn(bus, StreamName.Chunks, chunkSubject("live", 0)), 1);
    assert.equal(await messagesOn(bus, StreamName.Blobs, blobSubject("live")), 1);
    assert.deepEqual(await removeRun(bus.jsm, run), { consumersDeleted: 0, messagesPurged: 0 });
    await assert.rejects(removeRun(bus.jsm, "live"), RangeError);
  });
});
