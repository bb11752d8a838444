import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CapturePacket } from "./capture-item.js";
import { readCapture } from "./capture-reader.js";
import { isPcapWriteError, PcapWriteErrorCode } from "./errors.js";
import { createPcapWriter } from "./pcap-writer.js";
import { createPcapngWriter } from "./pcapng-writer.js";
import { collect, concat } from "./test-bytes.js";

class CollectingSink {
  readonly chunks: Uint8Array[] = [];
  write(chunk: Uint8Array): void {
    this.chunks.push(chunk);
  }
  bytes(): Uint8Array {
    return concat(...this.chunks);
  }
}

const packetsIn = [
  { timestampNs: 1_700_000_000_123_456_789n, data: Uint8Array.of(1, 2, 3) },
  { timestampNs: 1_700_000_001_000_000_001n, data: Uint8Array.of(4, 5, 6, 7, 8), originalLength: 1514 },
];

function summary(items: readonly unknown[]): unknown[] {
  return items.map((i) => {
    const p = i as CapturePacket;
    return p.type === "packet"
      ? { link: p.linkType, ts: p.timestampNs, data: [...p.data], orig: p.originalLength, ifc: p.interfaceId }
      : i;
  });
}

describe("writers", () => {
  for (const littleEndian of [true, false]) {
    for (const resolution of ["microsecond", "nanosecond"] as const) {
      it(`writers - pcap round trip, ${littleEndian ? "LE" : "BE"} ${resolution}`, async () => {
        const sink = new CollectingSink();
        const writer = createPcapWriter(sink, { linkType: 1, littleEndian, resolution });
        for (const p of packetsIn) await writer.writePacket(p);
        assert.equal(sink.chunks.length, 0, "small writes stay buffered until flush");
        await writer.flush();
        const bytes = sink.bytes();
        assert.equal(bytes.length, 24 + 16 + 3 + 16 + 5);
        assert.equal(writer.bytesWritten, bytes.length);
        assert.equal(writer.packetsWritten, 2);
        const magic = new DataView(bytes.buffer).getUint32(0, littleEndian);
        assert.equal(magic, resolution === "nanosecond" ? 0xa1b23c4d : 0xa1b2c3d4);
        const back = summary(await collect(readCapture(bytes)));
        const cut = (ts: bigint) => (resolution === "nanosecond" ? ts : (ts / 1000n) * 1000n);
        assert.deepEqual(back, [
          { link: 1, ts: cut(packetsIn[0]!.timestampNs), data: [1, 2, 3], orig: 3, ifc: 0 },
          { link: 1, ts: cut(packetsIn[1]!.timestampNs), data: [4, 5, 6, 7, 8], orig: 1514, ifc: 0 },
        ]);
      });
    }
  }

  it("writers - pcap writes its header exactly once, even for an empty file", async () => {
    const sink = new CollectingSink();
    const writer = createPcapWriter(sink, { linkType: 101 });
    await writer.flush();
    await writer.flush();
    assert.equal(sink.bytes().length, 24);
    await writer.writePacket(packetsIn[0]!);
    await writer.flush();
    assert.equal(sink.bytes().length, 24 + 16 + 3);
  });

  it("writers - pcap rejects inconsistent lengths and unrepresentable timestamps", async () => {
    const writer = createPcapWriter(new CollectingSink(), { linkType: 1 });
    const rejects = (p: Parameters<typeof writer.writePacket>[0], code: string) =>
      assert.rejects(writer.writePacket(p), (e: unknown) => isPcapWriteError(e) && e.code === code);
    await rejects(
      { timestampNs: 0n, data: Uint8Array.of(1), capturedLength: 2 },
      PcapWriteErrorCode.BadPacket,
    );
    await rejects(
      { timestampNs: 0n, data: Uint8Array.of(1, 2), originalLength: 1 },
      PcapWriteErrorCode.BadPacket,
    );
    await rejects({ timestampNs: -1n, data: Uint8Array.of(1) }, PcapWriteErrorCode.BadTimestamp);
    await rejects(
      { timestampNs: 0x1_0000_0000n * 1_000_000_000n, data: Uint8Array.of(1) },
      PcapWriteErrorCode.BadTimestamp,
    );
  });

  it("writers - a packet larger than the chunk size passes through intact", async () => {
    const sink = new CollectingSink();
    const writer = createPcapWriter(sink, { linkType: 1, chunkBytes: 64 });
    const big = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    await writer.writePacket({ timestampNs: 5n, data: big });
    await writer.writePacket({ timestampNs: 6n, data: Uint8Array.of(9) });
    await writer.flush();
    const back = (await collect(readCapture(sink.bytes()))) as CapturePacket[];
    assert.deepEqual([...back[0]!.data], [...big]);
    assert.deepEqual([...back[1]!.data], [9]);
  });

  for (const littleEndian of [true, false]) {
    it(`writers - pcapng round trip with interfaces and secrets, ${littleEndian ? "LE" : "BE"}`, async () => {
      const sink = new CollectingSink();
      const writer = createPcapngWriter(sink, { littleEndian, userApplication: "cloudtap test" });
      const eth = await writer.addInterface({ linkType: 1, name: "eth0" });
      const raw = await writer.addInterface({ linkType: 101, snapLength: 1500 });
      await writer.writeTlsKeyLog("CLIENT_RANDOM aa bb\n");
      await writer.writePacket({ ...packetsIn[0]!, interfaceId: eth });
      await writer.writePacket({ ...packetsIn[1]!, interfaceId: raw });
      await writer.writeSecrets(0x57474b4c, Uint8Array.of(1, 2, 3));
      await writer.flush();
      assert.equal(writer.packetsWritten, 2);
      const bytes = sink.bytes();
      assert.equal(writer.bytesWritten, bytes.length);
      assert.equal(bytes.length % 4, 0);
      const back = summary(await collect(readCapture(bytes)));
      assert.deepEqual(back, [
        {
          type: "tls-key-log",
          text: "CLIENT_RANDOM aa bb\n",
          offset: (back[0] as { offset: number }).offset,
        },
        { link: 1, ts: packetsIn[0]!.timestampNs, data: [1, 2, 3], orig: 3, ifc: 0 },
        { link: 101, ts: packetsIn[1]!.timestampNs, data: [4, 5, 6, 7, 8], orig: 1514, ifc: 1 },
        {
          type: "secrets",
          secretsType: 0x57474b4c,
          data: Uint8Array.of(1, 2, 3),
          offset: (back[3] as { offset: number }).offset,
        },
      ]);
    });
  }

  it("writers - pcapng writes one section header and refuses unknown interfaces", async () => {
    const sink = new CollectingSink();
    const writer = createPcapngWriter(sink);
    await writer.flush();
    await writer.flush();
    assert.equal(sink.bytes().length, 28);
    await assert.rejects(
      writer.writePacket({ interfaceId: 0, timestampNs: 0n, data: Uint8Array.of(1) }),
      (e: unknown) => isPcapWriteError(e) && e.code === PcapWriteErrorCode.UnknownInterface,
    );
    await assert.rejects(
      writer.writePacket({ interfaceId: 0, timestampNs: 0n, data: Uint8Array.of(1), capturedLength: 3 }),
      (e: unknown) => isPcapWriteError(e) && e.code === PcapWriteErrorCode.BadPacket,
    );
  });
});
