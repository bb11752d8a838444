import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type CaptureEncoder, createPcapEncoder, createPcapngEncoder } from "./capture-encoder.js";
import { readCapture } from "./capture-reader.js";

function join2(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}

const frames = [3, 60, 1514, 61, 2000].map((n, i) => new Uint8Array(n).fill(i + 1));

describe("pcap - capture encoders", () => {
  for (const kind of ["pcap-us", "pcap-ns", "pcapng"] as const) {
    it(`${kind}: frames built in place read back with their timestamps, across chunk boundaries`, async () => {
      const options = { linkType: 1, chunkBytes: 1024 };
      const out: Uint8Array[] = [];
      let enc: CaptureEncoder;
      if (kind === "pcapng") {
        const ng = createPcapngEncoder({ ...options, userApplication: "cloudtap test" });
        ng.writeTlsKeyLog("CLIENT_RANDOM 00 11\n");
        enc = ng;
      } else {
        enc = createPcapEncoder({
          ...options,
          resolution: kind === "pcap-ns" ? "nanosecond" : "microsecond",
        });
      }
      frames.forEach((f, i) => {
        enc.begin(f.length).set(f);
        enc.commit(1_700_000_000_123_456_789n, i * 1000, i === 1 ? 100 : undefined);
        out.push(...enc.drain());
      });
      out.push(...enc.flush());
      const bytes = join2(out);
      assert.equal(enc.bytesWritten, bytes.length);
      const got: { data: Uint8Array; ts: bigint; orig: number }[] = [];
      const keys: string[] = [];
      for await (const item of readCapture(bytes)) {
        if (item.type === "packet")
          got.push({ data: item.data.slice(), ts: item.timestampNs, orig: item.originalLength });
        if (item.type === "tls-key-log") keys.push(item.text);
      }
      assert.deepEqual(
        got.map((g) => g.data),
        frames,
      );
      const step = kind === "pcap-us" ? 1000n : 1n;
      assert.equal(got[0]!.ts, (1_700_000_000_123_456_789n / step) * step);
      assert.equal(got[1]!.orig, 100);
      if (kind === "pcapng") assert.deepEqual(keys, ["CLIENT_RANDOM 00 11\n"]);
    });
  }

  for (const kind of ["pcap-us", "pcap-ns", "pcapng"] as const) {
    it(`${kind}: a base plus offsets of up to days, forwards, backwards and across windows, stamps exactly`, async () => {
      const enc =
        kind === "pcapng"
          ? createPcapngEncoder({ linkType: 1 })
          : createPcapEncoder({ linkType: 1, resolution: kind === "pcap-ns" ? "nanosecond" : "microsecond" });
      const bases = [1_700_000_000_999_999_999n, 1_700_000_004_294_967_295n];
      const offsets = [
        0,
        1,
        999_999_999,
        1_000_000_000,
        4_294_967_295,
        4_294_967_296,
        7,
        86_400e9 * 5 + 3,
        2,
      ];
      const want: bigint[] = [];
      for (const base of bases)
        for (const o of offsets) {
          enc.begin(60).fill(1);
          enc.commit(base, o);
          want.push(base + BigInt(o));
        }
      const got: bigint[] = [];
      for await (const item of readCapture(join2(enc.flush())))
        if (item.type === "packet") got.push(item.timestampNs);
      const step = kind === "pcap-us" ? 1000n : 1n;
      assert.deepEqual(
        got,
        want.map((w) => (w / step) * step),
      );
    });
  }

  it("rejects frames longer than the snap length", () => {
    const enc = createPcapngEncoder({ linkType: 1, snapLength: 100 });
    assert.throws(() => enc.begin(101), /snap length/);
  });

  it("writes files tshark reads without complaint", () => {
    const dir = mkdtempSync(join(tmpdir(), "cloudtap-enc-"));
    try {
      const enc = createPcapngEncoder({ linkType: 1 });
      // A minimal Ethernet + IPv4 + UDP frame with correct checksums.
      const frame = Uint8Array.from(
        Buffer.from(
          "020000000002020000000001080045000021000040004011f6ec0a0000010a00000204d2162e000db3ee68656c6c6f",
          "hex",
        ),
      );
      enc.begin(frame.length).set(frame);
      enc.commit(1_700_000_000_000_000_000n);
      const file = join(dir, "one.pcapng");
      writeFileSync(file, join2(enc.flush()));
      const out = execFileSync("tshark", ["-r", file, "-T", "fields", "-e", "udp.payload"], {
        encoding: "utf8",
      });
      assert.equal(out.trim(), "68656c6c6f");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
