import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CaptureEncoder, createPcapEncoder, createPcapngEncoder } from "./capture-encoder.js";
import type { CaptureItem } from "./capture-item.js";
import { readCapture } from "./capture-reader.js";
import { mergeCaptureRecords } from "./record-merge.js";
import { concat } from "./test-bytes.js";

const T0 = 1_764_000_000_000_000_000n;

async function items(bytes: Uint8Array): Promise<CaptureItem[]> {
  const out: CaptureItem[] = [];
  for await (const i of readCapture(bytes)) out.push(i);
  return out;
}

/** A frame whose first two bytes name its input and its index there. */
function put(enc: CaptureEncoder, input: number, index: number, ts: bigint): void {
  const f = enc.begin(60 + ((index * 37) % 1400));
  f.fill(0);
  f[0] = input;
  f[1] = index;
  enc.commit(ts);
}

for (const format of ["pcapng", "pcap"] as const) {
  describe(`pcap - merging header-less ${format} outputs by packet time`, () => {
    const make = (fileHeader: boolean) =>
      format === "pcapng"
        ? createPcapngEncoder({ linkType: 1, chunkBytes: 4096, fileHeader })
        : createPcapEncoder({ linkType: 1, chunkBytes: 4096, resolution: "nanosecond", fileHeader });

    it("every record once, in time order, each input's own order kept, secrets before their packets", async () => {
      const inputs = [make(false), make(false), make(false)];
      // Input i sends packets at T0 + (k * 3 + i) ms, input 2 only every other step; equal times on purpose.
      for (let k = 0; k < 40; k++) {
        if (k === 10 && format === "pcapng")
          (inputs[1] as ReturnType<typeof createPcapngEncoder>).writeTlsKeyLog("CLIENT_RANDOM aa bb\n");
        put(inputs[0]!, 0, k, T0 + BigInt(k * 3) * 1_000_000n);
        put(inputs[1]!, 1, k, T0 + BigInt(k * 3 + 1) * 1_000_000n);
        if (k % 2 === 0) put(inputs[2]!, 2, k, T0 + BigInt(k * 3) * 1_000_000n); // ties with input 0
      }
      const header = make(true).flush();
      const merged: Uint8Array[] = [];
      mergeCaptureRecords(
        format,
        inputs.map((e) => e.flush()),
        (r) => merged.push(r.slice()),
      );
      const read = await items(concat(...header, ...merged));
      const packets = read.filter((i) => i.type === "packet");
      assert.equal(packets.length, 40 + 40 + 20);
      let last = 0n;
      const nextIndex = [0, 0, 0];
      for (const p of packets) {
        assert.ok(p.timestampNs >= last, "time never goes back");
        last = p.timestampNs;
        const input = p.data[0]!;
        assert.equal(p.data[1], nextIndex[input], `input ${input} keeps its order`);
        nextIndex[input] = (nextIndex[input] ?? 0) + (input === 2 ? 2 : 1);
      }
      // Ties: input 0 before input 2 at the same time.
      for (let i = 1; i < packets.length; i++) {
        const a = packets[i - 1]!;
        const b = packets[i]!;
        if (a.timestampNs === b.timestampNs) assert.ok(a.data[0]! < b.data[0]!, "ties go to the lower input");
      }
      if (format === "pcapng") {
        const at = read.findIndex((i) => i.type === "tls-key-log");
        const firstAfter = read.findIndex((i) => i.type === "packet" && i.data[0] === 1 && i.data[1] === 10);
        assert.ok(at >= 0 && at < firstAfter, "the secrets block precedes the packet that followed it");
      }
    });

    it("one input passes through whole; empty inputs are fine", () => {
      const a = make(false);
      for (let k = 0; k < 10; k++) put(a, 0, k, T0 + BigInt(k));
      const chunks = a.flush();
      const out: Uint8Array[] = [];
      mergeCaptureRecords(format, [[], chunks, []], (r) => out.push(r.slice()));
      assert.deepEqual(concat(...out), concat(...chunks));
    });

    it("a record that does not fit its chunk is a typed error, not a silent cut", () => {
      const a = make(false);
      put(a, 0, 0, T0);
      const [chunk] = a.flush();
      assert.throws(
        () => mergeCaptureRecords(format, [[chunk!.subarray(0, chunk!.length - 5)]], () => {}),
        /does not fit its chunk/,
      );
    });
  });
}
