/**
 * The fetch stage in continuous mode against a real nats-server: blobs landing over time are each published
 * once; a blob that lands late (its key before the cursor, inside the lateness) is still found; the re-listed
 * blobs already done are not published again; and the pickup and publish stages are counted per record.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Bus, connectBus } from "@cloudtap/bus";
import { MemoryStore } from "@cloudtap/object-store";
import { createCounters, createLogger } from "@cloudtap/service-kit";
import { createCtapWriter, dataBlobKey, MemorySink, Transport } from "@cloudtap/tap-format";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { createFetchStage } from "./fetch-stage.js";

async function blob(startNs: bigint, sequence: bigint): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "t1", sequence, startNs });
  await w.write({
    type: "conn-open",
    connId: (0xabc0 + Number(sequence)).toString(16).padStart(32, "0"),
    timestampNs: startNs,
    transport: Transport.Udp,
    ipVersion: 4,
    client: { address: "10.1.2.3", port: 5000 + Number(sequence) },
    server: { address: "192.0.2.53", port: 53 },
    midstream: false,
    tcp: {},
    attributes: {},
  });
  await w.finish(startNs + 1_000_000n);
  return sink.bytes();
}

async function until(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("mesh - fetch stage, continuous", () => {
  let nats: NatsServer;
  let bus: Bus;
  before(async () => {
    nats = await startNatsServer({ jetstream: true });
    bus = await connectBus({ servers: nats.url, name: "fetch-stage-test" });
  });
  after(async () => {
    await bus?.close();
    await nats?.cleanup();
  });

  it("publishes each blob once, finds a late one behind the cursor, and counts its stages", async () => {
    const store = new MemoryStore();
    const counters = createCounters();
    const stop = new AbortController();
    const stage = createFetchStage({
      bus,
      store,
      run: "cont",
      shardCount: 2,
      mode: { kind: "continuous", pollMs: 100, latenessNs: 60_000_000_000n },
      counters,
      logger: createLogger({ service: "fetcher", level: "warn" }),
      signal: stop.signal,
    });
    const running = stage.run();
    const t0 = BigInt(Date.now()) * 1_000_000n;
    const snap = () => counters.snapshot();
    await store.write(dataBlobKey("", "t1", t0, 1n), await blob(t0, 1n));
    await until("the first blob", () => snap()["blobs_done"] === 1);
    // A late blob: it starts before the cursor's blob, within the lateness.
    await store.write(dataBlobKey("", "t1", t0 - 5_000_000_000n, 2n), await blob(t0 - 5_000_000_000n, 2n));
    await until("the late blob", () => snap()["blobs_done"] === 2);
    await store.write(dataBlobKey("", "t1", t0 + 1_000_000_000n, 3n), await blob(t0 + 1_000_000_000n, 3n));
    await until("the third blob", () => snap()["blobs_done"] === 3);
    // A few more polls: everything re-listed is known done.
    const skipped = snap()["blobs_skipped_done"] ?? 0;
    await until("more polls", () => (snap()["blobs_skipped_done"] ?? 0) >= skipped + 6);
    stop.abort();
    await running;
    const s = snap();
    assert.equal(s["blobs_enqueued"], 3);
    assert.equal(s["blobs_done"], 3);
    assert.equal(s["records_published"], 3, "each blob's one record, once");
    assert.equal(s["mesh_stage_ms_count{stage=fetch_pickup}"], 3);
    assert.equal(s["mesh_stage_ms_count{stage=fetch_publish}"], 3);
  });
});
