import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { crc32 } from "./crc32.js";
import {
  BadMagicError,
  ChecksumMismatchError,
  type CtapItem,
  CtapReadStats,
  connShard,
  createCtapWriter,
  MemorySink,
  MissingTrailerError,
  OversizedFrameError,
  readCtap,
  readCtapBytes,
  TruncatedFrameError,
  UnsupportedVersionError,
} from "./index.js";
import { Frame } from "./layout.js";
import type { TapRecord } from "./records.js";
import { sampleRecords } from "./test-records.js";

const START = 1_764_000_000_000_000_000n;

async function encode(records: TapRecord[], compression: "none" | "gzip" = "none"): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "gw-test-1", sequence: 42n, startNs: START, compression });
  for (const r of records) await w.write(r);
  await w.finish(START + 5_000_000n);
  return sink.bytes();
}

async function collect(items: AsyncIterable<CtapItem>): Promise<CtapItem[]> {
  const out: CtapItem[] = [];
  for await (const it of items)
    out.push(it.type === "data" || it.type === "datagram" ? { ...it, payload: it.payload.slice() } : it);
  return out;
}

/** Splits bytes into chunks at the given sizes, cycling. */
async function* chunked(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let p = 0;
  for (let i = 0; p < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(p, p + n);
    p += n;
  }
}

describe("tap-format - round trip", () => {
  for (const compression of ["none", "gzip"] as const) {
    it(`decodes what it encodes (${compression})`, async () => {
      const records = sampleRecords();
      const blob = await encode(records, compression);
      const items = await collect(readCtapBytes(blob));
      assert.equal(items[0]?.type, "header");
      if (items[0]?.type === "header") {
        assert.equal(items[0].header.tapperId, "gw-test-1");
        assert.equal(items[0].header.sequence, 42n);
        assert.equal(items[0].header.startNs, START);
        assert.equal(items[0].header.compression, compression === "gzip" ? 1 : 0);
      }
      assert.deepEqual(items.slice(1, -1), records);
      const end = items.at(-1);
      assert.equal(end?.type, "blob-end");
      if (end?.type === "blob-end") {
        assert.equal(end.frameCount, records.length);
        assert.equal(end.endNs, START + 5_000_000n);
      }
    });
  }

  it("gives the same records whatever the input chunking", async () => {
    const blob = await encode(sampleRecords());
    const whole = await collect(readCtapBytes(blob));
    for (const sizes of [[1], [3, 7], [16], [17, 1, 100], [blob.length - 1]]) {
      assert.deepEqual(await collect(readCtap(chunked(blob, sizes))), whole, `chunk sizes ${sizes}`);
    }
  });

  it("hands out payloads as views into the input, not copies", async () => {
    const blob = await encode(sampleRecords());
    for await (const item of readCtapBytes(blob)) {
      if (item.type === "data" && item.payload.length > 0) assert.equal(item.payload.buffer, blob.buffer);
    }
  });

  it("counts and skips unknown frame types", async () => {
    const blob = await encode(sampleRecords().slice(0, 2));
    // Splice a frame of type 0x7777 in front of the blob-end frame, and fix the blob-end frame count.
    const body = Uint8Array.of(1, 2, 3, 4, 5);
    const frame = new Uint8Array(Frame.headerBytes + body.length);
    const dv = new DataView(frame.buffer);
    dv.setUint16(0, 0x5ac7, true);
    dv.setUint16(2, 0x7777, true);
    dv.setUint32(4, body.length, true);
    dv.setUint32(8, crc32(body), true);
    dv.setUint32(12, crc32(frame.subarray(0, 12)), true);
    frame.set(body, Frame.headerBytes);
    const endFrameAt = blob.length - (Frame.headerBytes + 24);
    const endFrame = blob.slice(endFrameAt);
    const edv = new DataView(endFrame.buffer);
    edv.setBigUint64(Frame.headerBytes + 8, 3n, true);
    edv.setUint32(8, crc32(endFrame.subarray(Frame.headerBytes)), true);
    edv.setUint32(12, crc32(endFrame.subarray(0, 12)), true);
    const spliced = new Uint8Array([...blob.subarray(0, endFrameAt), ...frame, ...endFrame]);
    const stats = new CtapReadStats();
    const items = await collect(readCtapBytes(spliced, { stats }));
    assert.deepEqual(
      items.map((i) => i.type),
      ["header", "conn-open", "data", "blob-end"],
    );
    assert.equal(stats.unknownFrames, 1);
    assert.equal(stats.unknownTypes.get(0x7777), 1);
  });
});

describe("tap-format - typed errors", () => {
  const cases: { name: string; mutate: (b: Uint8Array) => Uint8Array; want: new (...a: never[]) => Error }[] =
    [
      { name: "bad magic", mutate: (b) => b.map((x, i) => (i === 1 ? 0x44 : x)), want: BadMagicError },
      {
        name: "unsupported version",
        mutate: (b) => b.map((x, i) => (i === 8 ? 2 : x)),
        want: UnsupportedVersionError,
      },
      {
        name: "header checksum",
        mutate: (b) => b.map((x, i) => (i === 30 ? x ^ 1 : x)),
        want: ChecksumMismatchError,
      },
      { name: "empty input", mutate: () => new Uint8Array(0), want: TruncatedFrameError },
      { name: "truncated mid-frame", mutate: (b) => b.subarray(0, b.length - 30), want: TruncatedFrameError },
      { name: "missing blob-end", mutate: (b) => b.subarray(0, b.length - 40), want: MissingTrailerError },
      {
        name: "body checksum",
        mutate: (b) => b.map((x, i) => (i === b.length - 100 ? x ^ 0x80 : x)),
        want: ChecksumMismatchError,
      },
    ];
  for (const c of cases) {
    it(`${c.name} -> ${c.want.name}`, async () => {
      const blob = await encode(sampleRecords());
      await assert.rejects(collect(readCtapBytes(c.mutate(blob.slice()))), c.want);
    });
  }

  it("rejects an oversized frame before buffering its body", async () => {
    const blob = await encode(sampleRecords());
    let pulled = 0;
    async function* source() {
      // The header and the first frame header, then a source that would stall if the reader waited for the body.
      yield blob.subarray(0, 200);
      pulled++;
      await new Promise(() => {});
    }
    await assert.rejects(collect(readCtap(source(), { maxFrameBytes: 10 })), OversizedFrameError);
    assert.equal(pulled, 0);
  });

  it("resyncs after a corrupt frame and keeps every other record", async () => {
    const records = sampleRecords();
    const blob = await encode(records);
    const whole = await collect(readCtapBytes(blob));
    // Corrupt the header of the third frame (the IPv6 conn-open): find its offset by walking the frames.
    let p = new DataView(blob.buffer).getUint32(12, true);
    const starts: number[] = [];
    while (p < blob.length) {
      starts.push(p);
      p += Frame.headerBytes + new DataView(blob.buffer).getUint32(p + 4, true);
    }
    for (const [what, at] of [
      ["header", starts[2]! + 5],
      ["body", starts[2]! + Frame.headerBytes + 3],
    ] as const) {
      const bad = blob.slice();
      bad[at]! ^= 0xff;
      const stats = new CtapReadStats();
      const items = await collect(readCtapBytes(bad, { onCorruption: "resync", stats }));
      const kept = items.filter((i) => i.type !== "corruption");
      assert.deepEqual(
        kept,
        whole.filter((_, i) => i !== 3),
        what,
      );
      assert.equal(stats.corruptions, 1, what);
      assert.equal(stats.frameCountMismatch, true, what);
    }
  });
});

describe("tap-format - golden blobs", () => {
  const dir = new URL("../testdata/", import.meta.url);
  it("v1.0 sample blob decodes to the sample records", async () => {
    const golden = readFileSync(new URL("sample-v1.ctap", dir));
    const items = await collect(readCtapBytes(new Uint8Array(golden)));
    assert.deepEqual(items.slice(1, -1), sampleRecords());
  });
  it("the writer still produces the golden bytes", async () => {
    const golden = readFileSync(new URL("sample-v1.ctap", dir));
    assert.deepEqual(await encode(sampleRecords()), new Uint8Array(golden));
  });
  it("v1.0 gzip sample blob decodes to the sample records", async () => {
    const golden = readFileSync(new URL("sample-v1-gzip.ctap", dir));
    const items = await collect(readCtapBytes(new Uint8Array(golden)));
    assert.deepEqual(items.slice(1, -1), sampleRecords());
  });
  it("a truncated golden blob fails with TruncatedFrameError at a stated offset", async () => {
    const golden = new Uint8Array(readFileSync(new URL("sample-v1-truncated.ctap", dir)));
    await assert.rejects(collect(readCtapBytes(golden)), (err: unknown) => {
      assert.ok(err instanceof TruncatedFrameError);
      assert.match(err.message, /at byte \d+/);
      return true;
    });
  });
});

describe("tap-format - readers that share a blob (select)", () => {
  const SHARDS = 3;
  /** Records of many connections, so every shard gets some. */
  function manyConnections(): TapRecord[] {
    const out: TapRecord[] = [];
    for (let c = 0; c < 24; c++) {
      for (const r of sampleRecords()) {
        const connId = (c.toString(16).padStart(2, "0") + r.connId.slice(2)).slice(0, 32);
        out.push({ ...r, connId } as TapRecord);
      }
    }
    return out;
  }
  const shardOf = (r: TapRecord): number => {
    const id = new Uint8Array(16);
    for (let i = 0; i < 16; i++) id[i] = Number.parseInt(r.connId.slice(i * 2, i * 2 + 2), 16);
    return connShard(id, SHARDS);
  };
  const selectShard = (me: number) => (_type: number, body: Uint8Array) => connShard(body, SHARDS) === me;

  it("together, the shards read every record once; each shard only its own connections", async () => {
    const records = manyConnections();
    const blob = await encode(records);
    let total = 0;
    for (let me = 0; me < SHARDS; me++) {
      const stats = new CtapReadStats();
      const items = (await collect(readCtapBytes(blob, { select: selectShard(me), stats }))).filter(
        (i) => i.type !== "header" && i.type !== "blob-end",
      ) as TapRecord[];
      assert.ok(items.length > 0, `shard ${me} got records`);
      for (const r of items) assert.equal(shardOf(r), me);
      assert.deepEqual(
        items,
        records.filter((r) => shardOf(r) === me),
      );
      total += items.length;
      assert.equal(stats.notSelected, records.length - items.length);
      assert.equal(stats.frameCountMismatch, false);
    }
    assert.equal(total, records.length);
  });

  it("a damaged body is reported only by the shard that selected it; the others read on", async () => {
    const records = manyConnections();
    const blob = await encode(records);
    // Damage the payload of the 5th data record (its header stays sound).
    let frameAt = -1;
    let n = 0;
    const dv = new DataView(blob.buffer, blob.byteOffset);
    for (let at = blob.indexOf(0xc7); at >= 0 && at < blob.length - 1; ) {
      if (blob[at] === 0xc7 && blob[at + 1] === 0x5a && dv.getUint16(at + 2, true) === 2 && ++n === 5) {
        frameAt = at;
        break;
      }
      at = blob.indexOf(0xc7, at + 1);
    }
    assert.ok(frameAt > 0);
    const owner = connShard(blob, SHARDS, frameAt + Frame.headerBytes);
    const last = frameAt + Frame.headerBytes + dv.getUint32(frameAt + 4, true) - 1;
    blob[last] = blob[last]! ^ 0xff;
    for (let me = 0; me < SHARDS; me++) {
      const items = await collect(readCtapBytes(blob, { select: selectShard(me), onCorruption: "resync" }));
      const corruptions = items.filter((i) => i.type === "corruption");
      if (me === owner) {
        assert.equal(corruptions.length, 1);
        assert.ok(corruptions[0]?.type === "corruption" && corruptions[0].withinFrame);
      } else assert.equal(corruptions.length, 0, `shard ${me} does not see the owner's damage`);
      assert.equal(items.at(-1)?.type, "blob-end");
    }
  });
});
