import assert from "node:assert/strict";
import { test } from "node:test";
import type { ObjectStore } from "@cloudtap/object-store";
import {
  type ConnCloseRecord,
  type ConnOpenRecord,
  type DataRecord,
  Direction,
  parseBlobKey,
  TruncatedFrameError,
} from "@cloudtap/tap-format";
import { BlobRecorder, type BlobRecorderFaults } from "./blob-recorder.js";
import { planConnections } from "./connection-plan.js";
import { ConnectionTap } from "./connection-tap.js";
import { createPopulation } from "./population.js";
import { createPrng } from "./prng.js";
import { readBlobs, withTempStore } from "./test-helpers.js";

const T0 = 1_741_942_800_000_000_000n;
const MS = 1_000_000n;
const A = "a".repeat(32);
const B = "b".repeat(32);

function open(connId: string, ts: bigint): ConnOpenRecord {
  return {
    type: "conn-open",
    connId,
    timestampNs: ts,
    transport: 6,
    ipVersion: 4,
    client: { address: "10.0.0.1", port: 50000 },
    server: { address: "192.0.2.1", port: 443 },
    midstream: false,
    tcp: {},
    attributes: { user: "u" },
  };
}

function data(
  connId: string,
  offset: number,
  ts: bigint,
  length = 100,
  direction: Direction = Direction.ClientToServer,
): DataRecord {
  return {
    type: "data",
    connId,
    direction,
    offset,
    timestampNs: ts,
    spanNs: 0,
    payload: new Uint8Array(length).fill(offset & 0xff),
  };
}

function close(connId: string, ts: bigint): ConnCloseRecord {
  return {
    type: "conn-close",
    connId,
    timestampNs: ts,
    reason: 1,
    initiator: 0,
    bytesClientToServer: 0,
    bytesServerToClient: 0,
  };
}

function recorder(
  store: ObjectStore,
  over: {
    blobSize?: number;
    blobAgeNs?: bigint;
    faults?: Partial<BlobRecorderFaults>;
    maxPendingBytes?: number;
  } = {},
) {
  return new BlobRecorder({
    store,
    prefix: "p",
    blobSize: over.blobSize ?? 1 << 20,
    blobAgeNs: over.blobAgeNs ?? 1000n * MS,
    epochNs: T0,
    compression: "none",
    faults: { duplicateBlobs: false, shuffle: false, truncateLast: false, ...over.faults },
    prng: createPrng("recorder-test"),
    ...(over.maxPendingBytes !== undefined ? { maxPendingBytes: over.maxPendingBytes } : {}),
  });
}

function times(records: readonly { timestampNs: bigint }[]): number[] {
  return records.map((r) => Number((r.timestampNs - T0) / MS));
}

test("blob recorder - blobs rotate by age and by size, in time order", async () => {
  await withTempStore(async (store) => {
    const rec = recorder(store, { blobSize: 3 * (16 + 40 + 100) });
    rec.record("gw-1", open(A, T0 + 100n * MS));
    for (const [i, ms] of [200, 300, 400, 500, 1200, 1500, 2600].entries()) {
      rec.record("gw-1", data(A, i * 100, T0 + BigInt(ms) * MS));
    }
    rec.record("gw-1", close(A, T0 + 2700n * MS));
    const report = await rec.finish();
    const blobs = await readBlobs(store, "p");
    // The open record (162 bytes as estimated) and two data records (156 each) pass the 468-byte size; three
    // data records reach it; 1500 stays alone because 2600 is more than a second (the age) after it.
    assert.deepEqual(
      blobs.map((b) => times(b.records)),
      [[100, 200, 300], [400, 500, 1200], [1500], [2600, 2700]],
    );
    assert.deepEqual(
      blobs.map((b) => b.header.sequence),
      [0n, 1n, 2n, 3n],
    );
    for (const b of blobs) assert.equal(parseBlobKey(b.key)!.startNs, b.header.startNs);
    assert.equal(report.blobs.length, 4);
    assert.equal(report.forcedReleases, 0);
  });
});

test("blob recorder - records wait for the watermark and come out in time order", async () => {
  await withTempStore(async (store) => {
    const rec = recorder(store);
    const root = createPrng("recorder-watermark");
    const [planA] = planConnections(root.fork("plan"), createPopulation(root.fork("population")), {
      connections: 1,
      startNs: T0,
      meanInterArrivalNs: 0,
      tapperIds: ["gw-1"],
    });
    // A live connection whose clock is at T0 holds back records another connection makes later in time.
    const tap = new ConnectionTap(planA!, rec);
    rec.register(tap);
    rec.setPendingStart(T0 + 10_000n * MS);
    rec.record("gw-1", open(B, T0 + 500n * MS));
    rec.record("gw-1", data(B, 0, T0 + 600n * MS));
    tap.open();
    tap.data(Direction.ClientToServer, new Uint8Array(10));
    rec.unregister(tap);
    await rec.finish();
    const [blob] = await readBlobs(store, "p");
    const order = blob!.records.map((r) => `${r.type}:${r.connId === B ? "B" : "A"}`);
    assert.deepEqual(order, ["conn-open:A", "data:A", "conn-open:B", "data:B"]);
    assert.ok(
      times(blob!.records).every((t, i, all) => i === 0 || t >= all[i - 1]!),
      "sorted by time",
    );
  });
});

test("blob recorder - a full reorder buffer releases early and counts it", async () => {
  await withTempStore(async (store) => {
    const rec = recorder(store, { maxPendingBytes: 1000 });
    rec.setPendingStart(T0);
    for (let i = 0; i < 20; i++) rec.record("gw-1", data(A, i * 100, T0 + BigInt(i) * MS));
    const report = await rec.finish();
    assert.ok(report.forcedReleases > 0, "forced releases are counted");
    const blobs = await readBlobs(store, "p");
    assert.equal(
      blobs.reduce((n, b) => n + b.records.length, 0),
      20,
    );
  });
});

test("blob recorder - the gap rule drops exactly one record", async () => {
  await withTempStore(async (store) => {
    const rec = recorder(store, {
      faults: { gap: { connId: A, direction: Direction.ServerToClient, minOffset: 150 } },
    });
    for (let i = 0; i < 5; i++) {
      rec.record("gw-1", data(A, i * 100, T0 + BigInt(i) * MS, 100, Direction.ServerToClient));
      rec.record("gw-1", data(A, i * 100, T0 + BigInt(i) * MS, 100, Direction.ClientToServer));
    }
    const report = await rec.finish();
    assert.deepEqual(report.gap, { connId: A, direction: "s2c", offset: 200, length: 100 });
    const [blob] = await readBlobs(store, "p");
    const s2c = blob!.records.flatMap((r) => (r.type === "data" && r.direction === 1 ? [r.offset] : []));
    assert.deepEqual(s2c, [0, 100, 300, 400]);
    assert.equal(blob!.records.length, 9);
  });
});

test("blob recorder - duplicates, shuffle and truncation", async () => {
  await withTempStore(async (store) => {
    const rec = recorder(store, {
      blobSize: 4 * (16 + 40 + 100),
      faults: { duplicateBlobs: true, shuffle: true, truncateLast: true },
    });
    for (let i = 0; i < 24; i++) rec.record("gw-1", data(A, i * 100, T0 + BigInt(i) * MS));
    const report = await rec.finish();
    const blobs = await readBlobs(store, "p");
    const byKey = new Map(blobs.map((b) => [b.key, b]));

    const copies = report.blobs.filter((b) => b.duplicateOf !== undefined);
    assert.ok(copies.length >= 1, "the first blob is always copied");
    assert.equal(copies[0]!.duplicateOf, report.blobs[0]!.key);
    for (const c of copies) {
      if (c.key === report.truncation?.key) continue;
      assert.deepEqual(byKey.get(c.key)!.records, byKey.get(c.duplicateOf!)!.records);
      assert.notEqual(byKey.get(c.key)!.header.sequence, byKey.get(c.duplicateOf!)!.header.sequence);
    }

    // Shuffle: reading the originals in key order, some offset is lower than one in an earlier blob.
    const originals = blobs.filter((b) => !copies.some((c) => c.key === b.key));
    let highest = -1;
    let inversions = 0;
    for (const b of originals) {
      const offsets = b.records.map((r) => (r.type === "data" ? r.offset : -1));
      if (Math.min(...offsets) < highest) inversions++;
      highest = Math.max(highest, ...offsets);
    }
    assert.ok(inversions > 0, "a later offset sits in an earlier blob");
    assert.ok(report.shuffle!.movedRecords > 0, "moves are counted");

    // truncateLast: the last blob written is cut inside its last record.
    const cut = report.truncation!;
    assert.equal(cut.key, report.blobs.at(-1)!.key);
    const truncated = byKey.get(cut.key)!;
    assert.ok(truncated.error instanceof TruncatedFrameError, `got ${truncated.error?.name}`);
    assert.equal(truncated.records.length, report.blobs.at(-1)!.records - 1);
    assert.equal(cut.cutRecord?.type, "data");
    assert.ok(
      !truncated.records.some((r) => r.type === "data" && r.offset === cut.cutRecord!.offset),
      "the cut record is not readable",
    );
    assert.equal(blobs.filter((b) => b.error).length, 1);
  });
});
