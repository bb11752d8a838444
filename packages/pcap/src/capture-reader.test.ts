import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { corpusDir } from "@cloudtap/test-harness";
import type { CaptureItem, CapturePacket } from "./capture-item.js";
import { detectCaptureFormat, readCapture } from "./capture-reader.js";
import { isPcapFormatError, PcapErrorCode } from "./errors.js";
import {
  ByteBuilder,
  chunked,
  collect,
  concat,
  enhancedPacket,
  interfaceDescription,
  pcapngBlock,
  sectionHeader,
} from "./test-bytes.js";

const corpus = pathToFileURL(`${corpusDir()}captures/`);

function pcapFile(
  le: boolean,
  nanosecond: boolean,
  linkType: number,
  records: { sec: number; frac: number; data: number[]; orig?: number }[],
): Uint8Array {
  const b = new ByteBuilder(le)
    .u32(nanosecond ? 0xa1b23c4d : 0xa1b2c3d4)
    .u16(2)
    .u16(4)
    .u32(0)
    .u32(0)
    .u32(65535)
    .u32(linkType);
  for (const r of records)
    b.u32(r.sec)
      .u32(r.frac)
      .u32(r.data.length)
      .u32(r.orig ?? r.data.length)
      .bytes(r.data);
  return b.build();
}

function packets(items: CaptureItem[]): CapturePacket[] {
  return items.filter((i): i is CapturePacket => i.type === "packet");
}

async function expectFormatError(
  input: Uint8Array | AsyncIterable<Uint8Array>,
  code: string,
  offset: number,
  message?: RegExp,
): Promise<void> {
  await assert.rejects(collect(readCapture(input)), (err: unknown) => {
    assert.ok(isPcapFormatError(err), `want PcapFormatError, got ${String(err)}`);
    assert.equal(err.name, "PcapFormatError");
    assert.equal(err.code, code, err.message);
    assert.equal(err.offset, offset, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe("capture-reader", () => {
  for (const le of [true, false]) {
    for (const nanosecond of [false, true]) {
      it(`capture-reader - pcap ${le ? "little" : "big"}-endian ${nanosecond ? "nanosecond" : "microsecond"}`, async () => {
        const bytes = pcapFile(le, nanosecond, 1, [
          { sec: 1_700_000_000, frac: 123_456, data: [1, 2, 3] },
          { sec: 1_700_000_001, frac: 999, data: [4, 5], orig: 1500 },
        ]);
        assert.equal(detectCaptureFormat(bytes), "pcap");
        for (const size of [bytes.length, 7, 1]) {
          const got = packets(await collect(readCapture(chunked(bytes, size))));
          const scale = nanosecond ? 1n : 1000n;
          assert.deepEqual(
            got.map((p) => ({ ...p, data: [...p.data] })),
            [
              {
                type: "packet",
                linkType: 1,
                timestampNs: 1_700_000_000_000_000_000n + 123_456n * scale,
                capturedLength: 3,
                originalLength: 3,
                data: [1, 2, 3],
                interfaceId: 0,
                offset: 24,
              },
              {
                type: "packet",
                linkType: 1,
                timestampNs: 1_700_000_001_000_000_000n + 999n * scale,
                capturedLength: 2,
                originalLength: 1500,
                data: [4, 5],
                interfaceId: 0,
                offset: 43,
              },
            ],
            `chunk size ${size}`,
          );
        }
      });
    }
  }

  it("capture-reader - pcap link type field keeps the low 28 bits (FCS bits are not the link type)", async () => {
    const bytes = pcapFile(true, false, 0x1000_0000 | 0x4000_0000 | 1, [{ sec: 1, frac: 0, data: [0] }]);
    assert.equal(packets(await collect(readCapture(bytes)))[0]?.linkType, 1);
  });

  it("capture-reader - pcapng in either byte order: interfaces, EPB, SPB, obsolete PB, DSB, skipped blocks", async () => {
    for (const le of [true, false]) {
      const keyLog = "CLIENT_RANDOM 00 11\n";
      const file = concat(
        sectionHeader(le),
        interfaceDescription(le, 1), // default: microseconds
        interfaceDescription(le, 101, { tsresol: 9, tsoffset: 10n }),
        pcapngBlock(le, 4, (b) => b.u32(0)), // Name Resolution Block: skipped
        enhancedPacket(le, 0, 1_000_001n, Uint8Array.of(0xaa, 0xbb, 0xcc), 60),
        enhancedPacket(le, 1, 5n, Uint8Array.of(0x45)),
        pcapngBlock(le, 3, (b) => b.u32(2).bytes([7, 8], true)), // SPB, no timestamp
        pcapngBlock(le, 2, (b) => b.u16(0).u16(0).u32(0).u32(2_000_000).u32(1).u32(1).bytes([9], true)),
        pcapngBlock(le, 0x0a, (b) =>
          b.u32(0x544c534b).u32(keyLog.length).bytes(new TextEncoder().encode(keyLog), true),
        ),
        pcapngBlock(le, 0x0a, (b) => b.u32(0x57474b4c).u32(2).bytes([1, 2], true)),
        pcapngBlock(le, 0x40000bad, (b) => b.u32(32473).u32(0)), // custom block: skipped
      );
      assert.equal(detectCaptureFormat(file), "pcapng");
      for (const size of [file.length, 5, 1]) {
        const items = await collect(readCapture(chunked(file, size)));
        const summary = items.map((i) =>
          i.type === "packet"
            ? {
                t: i.type,
                link: i.linkType,
                ts: i.timestampNs,
                cap: i.capturedLength,
                orig: i.originalLength,
                data: [...i.data],
                ifc: i.interfaceId,
              }
            : i.type === "tls-key-log"
              ? { t: i.type, text: i.text }
              : { t: i.type, secretsType: i.secretsType, data: [...i.data] },
        );
        assert.deepEqual(
          summary,
          [
            { t: "packet", link: 1, ts: 1_000_001_000n, cap: 3, orig: 60, data: [0xaa, 0xbb, 0xcc], ifc: 0 },
            { t: "packet", link: 101, ts: 10_000_000_005n, cap: 1, orig: 1, data: [0x45], ifc: 1 },
            { t: "packet", link: 1, ts: 10_000_000_005n, cap: 2, orig: 2, data: [7, 8], ifc: 0 },
            { t: "packet", link: 1, ts: 2_000_000_000n, cap: 1, orig: 1, data: [9], ifc: 0 },
            { t: "tls-key-log", text: keyLog },
            { t: "secrets", secretsType: 0x57474b4c, data: [1, 2] },
          ],
          `${le ? "LE" : "BE"} chunk size ${size}`,
        );
      }
    }
  });

  it("capture-reader - if_tsresol: decimal and binary resolutions", async () => {
    const file = concat(
      sectionHeader(true),
      interfaceDescription(true, 1, { tsresol: 3 }), // milliseconds
      interfaceDescription(true, 1, { tsresol: 0x80 | 20 }), // 2^-20 s
      interfaceDescription(true, 1, { tsresol: 12 }), // picoseconds
      enhancedPacket(true, 0, 1500n, Uint8Array.of(0)),
      enhancedPacket(true, 1, 3n << 19n, Uint8Array.of(0)), // 1.5 s
      enhancedPacket(true, 2, 2_000_000_000_123_456n, Uint8Array.of(0)),
    );
    const ts = packets(await collect(readCapture(file))).map((p) => p.timestampNs);
    assert.deepEqual(ts, [1_500_000_000n, 1_500_000_000n, 2_000_000_000_123n]);
  });

  it("capture-reader - a second section resets interfaces and may switch byte order", async () => {
    const file = concat(
      sectionHeader(true),
      interfaceDescription(true, 1),
      enhancedPacket(true, 0, 1n, Uint8Array.of(1)),
      sectionHeader(false),
      interfaceDescription(false, 113),
      enhancedPacket(false, 0, 2n, Uint8Array.of(2)),
    );
    const got = packets(await collect(readCapture(chunked(file, 3))));
    assert.deepEqual(
      got.map((p) => [p.linkType, p.timestampNs, p.data[0]]),
      [
        [1, 1000n, 1],
        [113, 2000n, 2],
      ],
    );
    const stale = concat(
      sectionHeader(true),
      interfaceDescription(true, 1),
      sectionHeader(true),
      enhancedPacket(true, 0, 1n, Uint8Array.of(1)),
    );
    await expectFormatError(stale, PcapErrorCode.UnknownInterface, 28 + 20 + 28 + 8);
  });

  it("capture-reader - the ja4 capture's Decryption Secrets Block yields the TLS key log", async () => {
    const bytes = readFileSync(new URL("ja4__chrome-cloudflare-quic-with-secrets.pcapng", corpus));
    const items = await collect(readCapture(chunked(bytes, 4096)));
    const keyLogs = items.filter((i) => i.type === "tls-key-log");
    assert.equal(keyLogs.length, 1);
    const text = keyLogs[0]?.type === "tls-key-log" ? keyLogs[0].text : "";
    assert.match(text, /^CLIENT_HANDSHAKE_TRAFFIC_SECRET [0-9a-f]{64} [0-9a-f]{64}$/m);
    assert.match(text, /^SERVER_TRAFFIC_SECRET_0 /m);
    const pkts = packets(items);
    assert.equal(pkts.length, 83); // capinfos -c
    assert.equal(pkts[0]?.timestampNs, 1_668_114_405_114_955_000n); // capinfos -a: 2022-11-10 21:06:45.114955 UTC
    assert.ok(pkts.every((p) => p.linkType === 1 && p.data.length === p.capturedLength));
  });

  it("capture-reader - a real little-endian pcap reads whole and in odd chunks alike", async () => {
    const bytes = readFileSync(new URL("snet__tls1_2.pcap", corpus));
    const whole = packets(await collect(readCapture(bytes)));
    const split = packets(await collect(readCapture(chunked(bytes, 333))));
    assert.equal(whole.length, 38);
    assert.deepEqual(
      split.map((p) => [p.timestampNs, [...p.data]]),
      whole.map((p) => [p.timestampNs, [...p.data]]),
    );
  });

  describe("errors name the problem and the byte offset", () => {
    const goodPcap = pcapFile(true, false, 1, [
      { sec: 1, frac: 0, data: [1, 2, 3, 4] },
      { sec: 2, frac: 0, data: [5, 6, 7, 8] },
    ]);

    it("capture-reader - empty file, short file, bad magic, gzip, modified pcap", async () => {
      await expectFormatError(new Uint8Array(0), PcapErrorCode.Truncated, 0, /empty/);
      await expectFormatError(Uint8Array.of(0xd4, 0xc3), PcapErrorCode.Truncated, 0);
      await expectFormatError(
        new TextEncoder().encode("GET / HTTP/1.1"),
        PcapErrorCode.BadMagic,
        0,
        /magic 47 45 54 20/,
      );
      await expectFormatError(
        Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0),
        PcapErrorCode.UnsupportedFormat,
        0,
        /gzip/,
      );
      await expectFormatError(
        Uint8Array.of(0x34, 0xcd, 0xb2, 0xa1, 0, 0),
        PcapErrorCode.UnsupportedFormat,
        0,
        /modified/,
      );
    });

    it("capture-reader - pcap: bad version, truncated header, record header and record data", async () => {
      const badVersion = goodPcap.slice();
      badVersion[4] = 3;
      await expectFormatError(badVersion, PcapErrorCode.BadVersion, 4);
      await expectFormatError(goodPcap.subarray(0, 20), PcapErrorCode.Truncated, 0);
      await expectFormatError(
        goodPcap.subarray(0, 24 + 20 + 10),
        PcapErrorCode.Truncated,
        44,
        /record header: 10 of 16/,
      );
      await expectFormatError(
        goodPcap.subarray(0, goodPcap.length - 1),
        PcapErrorCode.Truncated,
        44,
        /3 of 4 captured bytes/,
      );
    });

    it("capture-reader - pcap: an oversized record is refused before its body is read", async () => {
      const huge = new ByteBuilder(true).u32(0xa1b2c3d4).u16(2).u16(4).u32(0).u32(0).u32(65535).u32(1);
      huge.u32(0).u32(0).u32(0x7fff_ffff).u32(0x7fff_ffff);
      let pulledAfterHeader = false;
      async function* source(): AsyncGenerator<Uint8Array> {
        yield huge.build();
        pulledAfterHeader = true;
        yield new Uint8Array(1024);
      }
      await expectFormatError(source(), PcapErrorCode.BlockTooLarge, 24, /exceeds the 16777216-byte cap/);
      assert.equal(pulledAfterHeader, false);
      await assert.rejects(
        collect(readCapture(goodPcap, { maxBlockBytes: 3 })),
        /exceeds the 3-byte cap at offset 24/,
      );
    });

    it("capture-reader - pcapng: bad block length 7, not multiple of 4, trailing mismatch", async () => {
      const head = concat(sectionHeader(true), interfaceDescription(true, 1));
      const at = head.length;
      const seven = concat(head, new ByteBuilder(true).u32(6).u32(7).u32(0).build());
      await expectFormatError(
        seven,
        PcapErrorCode.BadBlockLength,
        at,
        new RegExp(`^bad block length 7 at offset ${at}$`),
      );
      const epb = enhancedPacket(true, 0, 1n, Uint8Array.of(1, 2, 3, 4));
      const mismatch = epb.slice();
      mismatch[epb.length - 4] = 0x99;
      await expectFormatError(
        concat(head, mismatch),
        PcapErrorCode.BadBlockLength,
        at,
        /trailing length is 153/,
      );
      await expectFormatError(
        concat(head, epb.subarray(0, 20)),
        PcapErrorCode.Truncated,
        at,
        /20 of 36 bytes/,
      );
      await expectFormatError(concat(head, epb.subarray(0, 5)), PcapErrorCode.Truncated, at, /block header/);
    });

    it("capture-reader - pcapng: section header problems", async () => {
      const shb = sectionHeader(true);
      const badBom = shb.slice();
      badBom[8] = 0;
      await expectFormatError(badBom, PcapErrorCode.BadMagic, 8, /byte-order magic/);
      const badMajor = shb.slice();
      badMajor[12] = 2;
      await expectFormatError(badMajor, PcapErrorCode.BadVersion, 12);
      const shortShb = pcapngBlock(true, 0x0a0d0d0a, (b) => b.u32(0x1a2b3c4d).u16(1).u16(0));
      await expectFormatError(shortShb, PcapErrorCode.BadBlockLength, 0, /bad block length 20/);
      // A pcapng block after a pcap header is not possible, but a non-SHB first block is.
      const noShb = concat(shb, interfaceDescription(true, 1));
      await expectFormatError(noShb.subarray(shb.length), PcapErrorCode.BadMagic, 0);
    });

    it("capture-reader - pcapng: inner lengths that overrun their block, bad options, unknown interface", async () => {
      const head = concat(sectionHeader(true), interfaceDescription(true, 1));
      const at = head.length;
      const overrun = pcapngBlock(true, 6, (b) =>
        b.u32(0).u32(0).u32(0).u32(100).u32(100).bytes([1, 2, 3, 4]),
      );
      await expectFormatError(concat(head, overrun), PcapErrorCode.BadRecord, at + 20, /captured length 100/);
      const dsb = pcapngBlock(true, 0x0a, (b) => b.u32(0x544c534b).u32(64).bytes([65, 65, 65, 65]));
      await expectFormatError(concat(head, dsb), PcapErrorCode.BadRecord, at + 12, /secrets length 64/);
      const badOption = pcapngBlock(true, 1, (b) => b.u16(1).u16(0).u32(0).u16(9).u16(40).u32(0));
      await expectFormatError(
        concat(sectionHeader(true), badOption),
        PcapErrorCode.BadOption,
        28 + 16,
        /option 9 of length 40/,
      );
      await expectFormatError(
        concat(head, enhancedPacket(true, 3, 1n, Uint8Array.of(1))),
        PcapErrorCode.UnknownInterface,
        at + 8,
      );
      const tooBig = concat(
        head,
        new ByteBuilder(true)
          .u32(6)
          .u32(1 << 20)
          .build(),
      );
      await assert.rejects(
        collect(readCapture(tooBig, { maxBlockBytes: 1 << 16 })),
        (e: unknown) => isPcapFormatError(e) && e.code === PcapErrorCode.BlockTooLarge && e.offset === at,
      );
    });

    it("capture-reader - items before the error are delivered", async () => {
      const seen: CaptureItem[] = [];
      await assert.rejects(async () => {
        for await (const item of readCapture(goodPcap.subarray(0, goodPcap.length - 2))) seen.push(item);
      }, isPcapFormatError);
      assert.equal(seen.length, 1);
    });
  });
});
