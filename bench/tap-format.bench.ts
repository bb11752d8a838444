/**
 * CTAP write and read throughput, one core, in memory (no disk): payload MB/s (MB = 10^6 bytes).
 * Write: records -> frames (CRC-32 of every byte) -> a sink that keeps nothing.
 * Read: a blob delivered in 256 KiB chunks (as a file or object-store stream delivers it) -> readCtap, which
 * verifies both CRCs of every frame and decodes every record.
 */
import {
  createCtapWriter,
  Direction,
  MemorySink,
  readCtap,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import type { BenchResult } from "./bench-result.js";

const TOTAL = Number(process.env["CTAP_BENCH_BYTES"] ?? 256 * 1024 * 1024);
const CHUNK = 256 * 1024;

function records(payloadSize: number): { records: TapRecord[]; payloadBytes: number } {
  const payload = new Uint8Array(payloadSize);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
  const out: TapRecord[] = [];
  const conns = 64;
  const offsets = new Array<number>(conns * 2).fill(0);
  let bytes = 0;
  for (let c = 0; c < conns; c++) {
    out.push({
      type: "conn-open",
      connId: c.toString(16).padStart(32, "0"),
      timestampNs: 1n,
      transport: Transport.Tcp,
      ipVersion: 4,
      client: { address: "10.0.0.1", port: 40000 + c },
      server: { address: "192.0.2.1", port: 443 },
      midstream: false,
      tcp: {},
      attributes: { user: `user${c}@example.com` },
    });
  }
  for (let i = 0; bytes < TOTAL; i++) {
    const c = i % conns;
    const dir = (i >> 6) & 1 ? Direction.ServerToClient : Direction.ClientToServer;
    const k = c * 2 + dir;
    out.push({
      type: "data",
      connId: c.toString(16).padStart(32, "0"),
      direction: dir,
      offset: offsets[k]!,
      timestampNs: BigInt(i),
      spanNs: 0,
      payload,
    });
    offsets[k]! += payload.length;
    bytes += payload.length;
  }
  return { records: out, payloadBytes: bytes };
}

/** Median of `runs` timings of `fn`, in seconds. */
async function median(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function write(rs: TapRecord[]): Promise<number> {
  let n = 0;
  const sink = {
    write: (c: Uint8Array) => {
      n += c.length;
    },
  };
  const w = createCtapWriter(sink, { tapperId: "bench", sequence: 0n, startNs: 0n });
  for (const r of rs) await w.write(r);
  await w.finish(1n);
  return n;
}

export async function benchTapFormat(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const size of [16 * 1024, 1460]) {
    const { records: rs, payloadBytes } = records(size);
    // Write.
    await write(rs.slice(0, 1000)); // warm-up
    let s = await median(3, () => write(rs));
    results.push({
      name: `ctap write, ${size} B payloads`,
      value: payloadBytes / 1e6 / s,
      unit: "MB/s",
      detail: `${(payloadBytes / 2 ** 20).toFixed(0)} MiB payload in ${s.toFixed(2)} s, median of 3`,
    });
    // Read: build the blob once, cut into 256 KiB chunks.
    const sink = new MemorySink();
    const w = createCtapWriter(sink, { tapperId: "bench", sequence: 0n, startNs: 0n });
    for (const r of rs) await w.write(r);
    await w.finish(1n);
    const blob = sink.bytes();
    const chunks: Uint8Array[] = [];
    for (let p = 0; p < blob.length; p += CHUNK) chunks.push(blob.subarray(p, p + CHUNK));
    const read = async () => {
      let got = 0;
      for await (const item of readCtap(
        (async function* () {
          yield* chunks;
        })(),
      )) {
        if (item.type === "data") got += item.payload.length;
      }
      if (got !== payloadBytes) throw new Error(`read ${got} payload bytes, wrote ${payloadBytes}`);
    };
    await read(); // warm-up
    s = await median(3, read);
    results.push({
      name: `ctap read + verify, ${size} B payloads`,
      value: payloadBytes / 1e6 / s,
      unit: "MB/s",
      detail: `${(blob.length / 2 ** 20).toFixed(0)} MiB blob in ${s.toFixed(2)} s, median of 3`,
      target: "at least 1000 MB/s",
    });
  }
  results.push(await resyncOverJunk());
  return results;
}

/**
 * Issue 11's bound: resync over 8 MiB of one repeated byte value (0xC7, the sync word's first byte, so every
 * position is a candidate) between a blob's header and its frames, in 64 KiB chunks. Target: under a second.
 */
async function resyncOverJunk(): Promise<BenchResult> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "bench", sequence: 0n, startNs: 0n });
  for (const r of records(1460).records.slice(0, 64)) await w.write(r);
  await w.finish(1n);
  const good = sink.bytes();
  const headerBytes = new DataView(good.buffer, good.byteOffset).getUint32(12, true);
  const junk = new Uint8Array(8 * 1024 * 1024).fill(0xc7);
  const blob = new Uint8Array(good.length + junk.length);
  blob.set(good.subarray(0, headerBytes), 0);
  blob.set(junk, headerBytes);
  blob.set(good.subarray(headerBytes), headerBytes + junk.length);
  const chunks: Uint8Array[] = [];
  for (let p = 0; p < blob.length; p += 65536) chunks.push(blob.subarray(p, p + 65536));
  const scan = async () => {
    let corruptions = 0;
    for await (const item of readCtap(
      (async function* () {
        yield* chunks;
      })(),
      { onCorruption: "resync" },
    ))
      if (item.type === "corruption") corruptions++;
    if (corruptions !== 1) throw new Error(`${corruptions} corruptions, expected 1`);
  };
  await scan(); // warm-up
  const s = await median(3, scan);
  return {
    name: "ctap resync over 8 MiB of 0xC7",
    value: s * 1000,
    unit: "ms",
    detail: "64 KiB chunks, median of 3",
    target: "under 1000 ms",
  };
}
