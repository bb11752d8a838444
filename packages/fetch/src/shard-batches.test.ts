import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CloseInitiator,
  CloseReason,
  connShard,
  createCtapWriter,
  Direction,
  MemorySink,
  readCtapBytes,
  type TapRecord,
  Transport,
  writeConnId,
} from "@cloudtap/tap-format";
import { batchMsgId, shardBatches } from "./shard-batches.js";

const START = 1_764_000_000_000_000_000n;

function connId(i: number): string {
  return i.toString(16).padStart(32, "0");
}

/** `connections` connections, each an open, `chunks` data records of `payload` bytes, and a close. */
function makeRecords(connections: number, chunks: number, payload: number): TapRecord[] {
  const out: TapRecord[] = [];
  for (let c = 0; c < connections; c++) {
    out.push({
      type: "conn-open",
      connId: connId(c),
      timestampNs: START + BigInt(c),
      transport: Transport.Tcp,
      ipVersion: 4,
      client: { address: "10.0.0.1", port: 40000 + c },
      server: { address: "10.0.0.2", port: 443 },
      midstream: false,
      tcp: {},
      attributes: { user: `u${c}`, app: "test" },
    });
  }
  for (let k = 0; k < chunks; k++) {
    for (let c = 0; c < connections; c++) {
      out.push({
        type: "data",
        connId: connId(c),
        direction: k % 2 === 0 ? Direction.ClientToServer : Direction.ServerToClient,
        offset: Math.floor(k / 2) * payload,
        timestampNs: START + 1000n + BigInt(k * connections + c),
        spanNs: 0,
        payload: new Uint8Array(payload).fill((c + k) & 0xff),
      });
    }
  }
  for (let c = 0; c < connections; c++) {
    out.push({
      type: "conn-close",
      connId: connId(c),
      timestampNs: START + 10_000_000n + BigInt(c),
      reason: CloseReason.Fin,
      initiator: CloseInitiator.Client,
      bytesClientToServer: 0,
      bytesServerToClient: 0,
    });
  }
  return out;
}

async function makeBlob(records: readonly TapRecord[], endNs = START + 20_000_000n): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "tap-a", sequence: 7n, startNs: START });
  for (const r of records) await w.write(r);
  await w.finish(endNs);
  return sink.bytes();
}

function shardOf(id: string, shards: number): number {
  const b = new Uint8Array(16);
  writeConnId(id, b, 0);
  return connShard(b, shards);
}

/** A stable text form of a record, so records can be compared after decoding. */
function recordKey(r: TapRecord): string {
  return JSON.stringify(r, (_k, v) =>
    typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v,
  );
}

async function decodeBatch(bytes: Uint8Array) {
  const records: TapRecord[] = [];
  let header: unknown;
  let endNs: bigint | undefined;
  for await (const item of readCtapBytes(bytes)) {
    if (item.type === "header") header = item.header;
    else if (item.type === "blob-end") endNs = item.endNs;
    else if (item.type !== "corruption") records.push(item);
  }
  return { header, endNs, records };
}

describe("fetch shard-batches - one blob into per-shard CTAP batches", () => {
  it("fetch shard-batches - every record once, in its shard, in source order; header and end time copied", async () => {
    const shards = 4;
    const records = makeRecords(40, 30, 3000);
    const blob = await makeBlob(records);
    const result = await shardBatches("data/x.ctap", blob, { shardCount: shards });
    assert.deepEqual(result.problems, []);
    assert.equal(result.undecodable, undefined);
    assert.equal(result.records, records.length);

    const perShard = new Map<number, string[]>();
    const seenIndex = new Map<number, number>();
    for (const b of result.batches) {
      assert.equal(b.index, seenIndex.get(b.shard) ?? 0, "indexes count up per shard");
      seenIndex.set(b.shard, b.index + 1);
      const { header, endNs, records: got } = await decodeBatch(b.bytes);
      assert.deepEqual(header, {
        versionMajor: 1,
        versionMinor: 0,
        tapperId: "tap-a",
        sequence: 7n,
        startNs: START,
        compression: 0,
        headerBytes: (header as { headerBytes: number }).headerBytes,
      });
      assert.equal(endNs, START + 20_000_000n);
      assert.equal(got.length, b.records);
      for (const r of got) assert.equal(shardOf(r.connId, shards), b.shard);
      perShard.set(b.shard, [...(perShard.get(b.shard) ?? []), ...got.map(recordKey)]);
    }
    for (let s = 0; s < shards; s++) {
      const want = records.filter((r) => shardOf(r.connId, shards) === s).map(recordKey);
      assert.deepEqual(perShard.get(s) ?? [], want, `shard ${s}: its records in source order`);
    }
  });

  it("fetch shard-batches - batches are cut near the target and never above the maximum", async () => {
    const records = makeRecords(8, 200, 5000); // about 8 MB
    const blob = await makeBlob(records);
    const result = await shardBatches("data/y.ctap", blob, { shardCount: 2 });
    assert.ok(result.batches.length > 10);
    for (const b of result.batches)
      assert.ok(b.bytes.length <= 1024 * 1024, `batch of ${b.bytes.length} bytes`);
    const full = result.batches.filter((b, i, all) => all[i + 1]?.shard === b.shard);
    for (const b of full)
      assert.ok(b.bytes.length >= 512 * 1024, `non-final batch of ${b.bytes.length} bytes`);
  });

  it("fetch shard-batches - a record larger than the maximum travels alone", async () => {
    // 700 KiB records: open + data0 (then at the target: cut), data1, data2 (each at the target), close.
    const mid = await shardBatches("data/mid.ctap", await makeBlob(makeRecords(1, 3, 700 * 1024)), {
      shardCount: 1,
    });
    assert.deepEqual(
      mid.batches.map((b) => b.records),
      [2, 1, 1, 1],
    );
    // 1.2 MiB records: the open cannot take one without passing 1 MiB, so each goes alone.
    const big = await shardBatches("data/big.ctap", await makeBlob(makeRecords(1, 2, 1200 * 1024)), {
      shardCount: 1,
    });
    assert.deepEqual(
      big.batches.map((b) => b.records),
      [1, 1, 1, 1],
    );
    for (const b of big.batches) assert.ok(b.records === 1 || b.bytes.length <= 1024 * 1024);
    assert.equal(batchMsgId("data/big.ctap", 0, 2), "data/big.ctap#0#2");
  });

  it("fetch shard-batches - a damaged frame is reported, the good records still batched", async () => {
    const records = makeRecords(4, 4, 200);
    const blob = await makeBlob(records);
    // Flip a byte in the middle of the blob: inside some frame's body.
    const damaged = blob.slice();
    const at = Math.floor(damaged.length / 2);
    damaged[at] = damaged[at]! ^ 0xff;
    const result = await shardBatches("data/d.ctap", damaged, { shardCount: 2 });
    assert.equal(result.undecodable, undefined);
    assert.ok(result.problems.length >= 1);
    assert.equal(result.problems[0]!.blob, "data/d.ctap");
    assert.match(result.problems[0]!.kind, /checksum-mismatch|malformed-record/);
    assert.ok(result.records >= records.length - 2 && result.records < records.length, `${result.records}`);
  });

  it("fetch shard-batches - a truncated blob keeps its records and reports the missing trailer", async () => {
    const records = makeRecords(2, 2, 100);
    const blob = await makeBlob(records);
    const result = await shardBatches("data/t.ctap", blob.subarray(0, blob.length - 40), { shardCount: 2 });
    assert.equal(result.records, records.length);
    assert.deepEqual(
      result.problems.map((p) => p.kind),
      ["missing-trailer"],
    );
    // Without its blob-end frame, the blob ends at its latest record (the second close).
    const { endNs } = await decodeBatch(result.batches[0]!.bytes);
    assert.equal(endNs, START + 10_000_001n);
  });

  it("fetch shard-batches - bytes that are not a CTAP blob are undecodable, with the reader's reason", async () => {
    const result = await shardBatches("data/junk.ctap", new TextEncoder().encode("definitely not a blob"), {
      shardCount: 2,
    });
    assert.deepEqual(result.batches, []);
    assert.equal(result.undecodable?.kind, "bad-magic");
    const empty = await shardBatches("data/empty.ctap", new Uint8Array(0), { shardCount: 2 });
    assert.ok(empty.undecodable);
  });
});
