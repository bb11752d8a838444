import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createCaptureEncoder } from "@cloudtap/egress";
import { listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import type { FlowAwareFrameSink, FrameFlowContext, FrameSink } from "@cloudtap/packet";
import { createStitcherFromSettings, runStitchJob } from "@cloudtap/stitch";
import { runSimulation } from "@cloudtap/tapsim";
import { createKeyStore } from "@cloudtap/tls";
import {
  BATCH_HEADROOM,
  FrameBatchError,
  FrameBatchRecorder,
  FrameBatchReplayer,
  type RecordedBatch,
} from "./frame-batch.js";

/** A flow-aware pcapng encoder that logs the flow calls it gets (the replay must make the same ones). */
function loggingEncoder() {
  const encoder = createCaptureEncoder({ format: "pcapng" });
  const calls: string[] = [];
  const sink: FlowAwareFrameSink & { embedKeys(text: string): void } = {
    begin: (n) => encoder.begin(n),
    commit: (ts, off, orig) => encoder.commit(ts, off, orig),
    forFlow(flow: FrameFlowContext): FrameSink & { end(): void } {
      calls.push(`start ${flow.connId} ${flow.variant} ${flow.server.port}`);
      return {
        begin: (n) => encoder.begin(n),
        commit: (ts, off, orig) => encoder.commit(ts, off, orig),
        end: () => calls.push(`end ${flow.connId} ${flow.variant}`),
      };
    },
    embedKeys(text) {
      calls.push(`keys ${text.length}`);
      if ("writeTlsKeyLog" in encoder) (encoder as { writeTlsKeyLog(t: string): void }).writeTlsKeyLog(text);
    },
  };
  return { encoder, sink, calls };
}

/** A TCP flow's context, for recorder tests. */
function tcpFlow(connId: string): FrameFlowContext {
  return {
    connId,
    variant: "original",
    transport: "tcp",
    ipVersion: 4,
    client: { address: "10.0.0.1", port: 1 },
    server: { address: "10.0.0.2", port: 2 },
    attributes: {},
  };
}

/** A replayer that pushes each flow frame's first byte to `seen`, and -1 at each flow's end. */
function firstBytesReplayer(seen: number[]): FrameBatchReplayer {
  return new FrameBatchReplayer({
    begin: () => new Uint8Array(0),
    commit: () => {},
    forFlow: () => {
      let buf = new Uint8Array(0);
      return {
        begin: (n: number) => {
          buf = new Uint8Array(n);
          return buf;
        },
        commit: () => seen.push(buf[0]!),
        end: () => seen.push(-1),
      };
    },
  });
}

async function stitchInto(
  sink: FlowAwareFrameSink & { embedKeys(t: string): void },
  store: ObjectStore,
  keyLogs: string[],
  onBatch?: () => void,
) {
  const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
  for (const k of keyLogs) keys.addKeyLog(k, 0);
  const stitcher = createStitcherFromSettings(
    { tls: { variant: "both", embedKeys: true } },
    { sink, keys, embedKeys: (t) => sink.embedKeys(t) },
  );
  const listed = [];
  for await (const b of listBlobs(store)) listed.push(b);
  await runStitchJob({
    blobs: (async function* () {
      yield* sortBlobsByTime(listed);
    })(),
    stitcher,
    output: {
      drain: () => {
        onBatch?.();
        return [];
      },
      flush: () => {
        onBatch?.();
        return [];
      },
    },
    sink: { write: () => {} },
  });
}

describe("mirror - frame batches", () => {
  it("recorded and replayed, the egress gets the same calls and the same bytes as in one process", async () => {
    const store = openStore(join(mkdtempSync(join(tmpdir(), "cloudtap-mirror-")), "store"));
    await runSimulation({ dataStore: store, keyStore: store, connections: 12, seed: 4, blobSize: 64 * 1024 });
    const keyLogs: string[] = [];
    for await (const o of store.list("keys/"))
      keyLogs.push(new TextDecoder().decode(await store.readBytes(o.key)));

    const direct = loggingEncoder();
    await stitchInto(direct.sink, store, keyLogs);

    const replayed = loggingEncoder();
    const recorder = new FrameBatchRecorder();
    const replayer = new FrameBatchReplayer(replayed.sink);
    let batches = 0;
    const ship = () => {
      const batch = recorder.take();
      if (batch.bytes.length === 0) return;
      batches++;
      replayer.replay(batch.bytes);
    };
    await stitchInto(recorder, store, keyLogs, ship);
    ship();

    assert.ok(batches > 1, `${batches} batches`);
    assert.ok(direct.calls.length > 24);
    assert.deepEqual(replayed.calls, direct.calls);
    const a = Buffer.concat(direct.encoder.flush());
    const b = Buffer.concat(replayed.encoder.flush());
    assert.ok(a.equals(b), "the same pcapng bytes");
  });

  for (const chunkBytes of [undefined, 8192, 20_000]) {
    it(`takeBatches cuts at event boundaries under the cap, and the replay of the parts is the whole (buffers of ${chunkBytes ?? "default"} bytes)`, () => {
      const recorder = new FrameBatchRecorder(chunkBytes === undefined ? {} : { chunkBytes });
      const flow = recorder.forFlow(tcpFlow("ab".repeat(16)));
      for (let i = 0; i < 100; i++) {
        flow.begin(1000).fill(i);
        flow.commit(BigInt(i));
      }
      flow.end();
      recorder.connectionEnded("ab".repeat(16));
      const batches = recorder.takeBatches(10_000);
      assert.ok(batches.length >= 10);
      for (const b of batches) assert.ok(b.bytes.length <= 10_000, `${b.bytes.length}`);
      assert.equal(
        batches.reduce((n, b) => n + b.frames, 0),
        100,
      );
      assert.deepEqual(batches.at(-1)!.endedConnections, ["ab".repeat(16)]);
      const seen: number[] = [];
      const replayer = firstBytesReplayer(seen);
      for (const b of batches) replayer.replay(b.bytes);
      assert.deepEqual(seen, [...Array.from({ length: 100 }, (_, i) => i), -1]);
      assert.deepEqual(recorder.takeBatches(10_000), []);
      assert.equal(recorder.size, 0);
    });
  }

  it("batches taken one after another share buffers, each with a headroom of its own the holder may overwrite", () => {
    const recorder = new FrameBatchRecorder({ chunkBytes: 64 * 1024 });
    const flow = recorder.forFlow(tcpFlow("cd".repeat(16)));
    const batches: RecordedBatch[] = [];
    for (let i = 0; i < 200; i++) {
      flow.begin(700).fill(i & 0xff);
      flow.commit(BigInt(i));
      if (i % 3 === 2) batches.push(...recorder.takeBatches(1 << 20));
    }
    flow.end();
    batches.push(...recorder.takeBatches(1 << 20));
    assert.ok(batches.length > 60);
    // Most batches after the first in a buffer live in the same buffer as the one before them.
    const shared = batches.filter((b, i) => i > 0 && b.bytes.buffer === batches[i - 1]!.bytes.buffer).length;
    assert.ok(shared > batches.length / 2, `${shared} of ${batches.length}`);
    // Every holder writes over its headroom (as the mirror link writes its header there): no batch changes.
    const copies = batches.map((b) => Buffer.from(b.bytes));
    for (const b of batches) {
      assert.equal(b.headroom, BATCH_HEADROOM);
      assert.ok(b.bytes.byteOffset >= b.headroom);
      new Uint8Array(b.bytes.buffer, b.bytes.byteOffset - b.headroom, b.headroom).fill(0x5a);
    }
    for (const [i, b] of batches.entries()) assert.ok(Buffer.from(b.bytes).equals(copies[i]!), `batch ${i}`);
    const seen: number[] = [];
    const replayer = firstBytesReplayer(seen);
    for (const b of batches) replayer.replay(b.bytes);
    assert.deepEqual(seen, [...Array.from({ length: 200 }, (_, i) => i & 0xff), -1]);
  });

  it("takes with nothing recorded use no room: the next batch starts where it would have", () => {
    const recorder = new FrameBatchRecorder();
    recorder.begin(10).fill(1);
    recorder.commit(1n);
    const [first] = recorder.takeBatches(1 << 20);
    for (let i = 0; i < 5000; i++) assert.deepEqual(recorder.takeBatches(1 << 20), []);
    recorder.begin(10).fill(2);
    recorder.commit(2n);
    const [next] = recorder.takeBatches(1 << 20);
    assert.equal(next!.bytes.buffer, first!.bytes.buffer);
    assert.equal(next!.bytes.byteOffset, first!.bytes.byteOffset + first!.bytes.length + BATCH_HEADROOM);
  });

  it("take() after takeBatches() leaves the batches handed out as they were", () => {
    const recorder = new FrameBatchRecorder();
    recorder.begin(100).fill(1);
    recorder.commit(1n);
    const [viewed] = recorder.takeBatches(1 << 20);
    const kept = Buffer.from(viewed!.bytes);
    recorder.begin(100).fill(2);
    recorder.commit(2n);
    recorder.take();
    for (let i = 0; i < 50; i++) {
      recorder.begin(100).fill(3);
      recorder.commit(3n);
    }
    recorder.takeBatches(1 << 20);
    assert.ok(Buffer.from(viewed!.bytes).equals(kept));
  });

  it("a malformed batch is a FrameBatchError, never a partial frame", () => {
    const recorder = new FrameBatchRecorder();
    recorder.begin(10).fill(7);
    recorder.commit(5n);
    const bytes = recorder.take().bytes;
    const replayer = new FrameBatchReplayer(loggingEncoder().sink);
    assert.throws(() => replayer.replay(bytes.subarray(0, bytes.length - 1)), FrameBatchError);
    assert.throws(() => replayer.replay(Uint8Array.of(9)), FrameBatchError);
  });
});
