/**
 * Synthetic tapped traffic for benchmarks: CTAP blobs written to a directory store, many connections with a
 * small request and a larger response each, records of 16 KiB, blobs rotated at 8 MiB. The payload is a
 * deterministic pseudo-random pattern; the point is volume and record shape, not content.
 */
import { openStore } from "@cloudtap/object-store";
import {
  CloseInitiator,
  CloseReason,
  createCtapWriter,
  Direction,
  dataBlobKey,
  MemorySink,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";

export interface SyntheticStoreOptions {
  readonly dir: string;
  readonly payloadBytes: number;
  readonly connections: number;
  readonly recordBytes?: number;
  readonly blobBytes?: number;
  /**
   * Record time between two response records (default 1 µs: 16 KiB records at 16 GB/s, the whole store in
   * milliseconds of record time). A realistic rate (100 µs: 1.3 Gb/s) lets a time order release as the run
   * goes, as it does with real traffic, instead of holding a store shorter than its window whole.
   */
  readonly recordGapNs?: bigint;
}

export async function writeSyntheticStore(
  o: SyntheticStoreOptions,
): Promise<{ payloadBytes: number; blobs: number }> {
  const store = openStore(o.dir);
  const recordBytes = o.recordBytes ?? 16 * 1024;
  const blobBytes = o.blobBytes ?? 8 * 1024 * 1024;
  const pattern = new Uint8Array(recordBytes);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 131 + 17) & 0xff;
  const perConn = Math.ceil(o.payloadBytes / o.connections);
  const gapNs = o.recordGapNs ?? 1000n;
  const t0 = 1_764_000_000_000_000_000n;
  let seq = 0n;
  let blobs = 0;
  let total = 0;
  let sink = new MemorySink();
  let w = createCtapWriter(sink, { tapperId: "bench", sequence: seq, startNs: t0 });
  let ts = t0;
  // The key carries the blob's start time (its first record's), as a tapper names it.
  let blobStart = t0;
  const flush = async () => {
    await w.finish(ts);
    await store.write(dataBlobKey("", "bench", blobStart, seq), sink.bytes());
    blobs++;
    seq++;
    sink = new MemorySink();
    w = createCtapWriter(sink, { tapperId: "bench", sequence: seq, startNs: ts });
    blobStart = ts;
  };
  const write = async (r: TapRecord) => {
    await w.write(r);
    if (w.frameBytes >= blobBytes) await flush();
  };
  // Connections run 64 at a time, interleaved, as a tapper sees concurrent traffic.
  const active = 64;
  for (let base = 0; base < o.connections; base += active) {
    const ids: string[] = [];
    for (let c = base; c < Math.min(o.connections, base + active); c++) {
      const connId = c.toString(16).padStart(32, "0");
      ids.push(connId);
      await write({
        type: "conn-open",
        connId,
        timestampNs: ts,
        transport: Transport.Tcp,
        ipVersion: 4,
        client: { address: `10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}`, port: 40000 + (c % 20000) },
        server: { address: "203.0.113.10", port: 443 },
        midstream: false,
        tcp: {
          clientMss: 1460,
          serverMss: 1460,
          clientWindowScale: 7,
          serverWindowScale: 7,
          sackPermitted: true,
        },
        attributes: { user: `user${c % 500}@example.com`, app: "bench" },
      });
      await write({
        type: "data",
        connId,
        direction: Direction.ClientToServer,
        offset: 0,
        timestampNs: ts,
        spanNs: 0,
        payload: pattern.subarray(0, 400),
      });
      total += 400;
    }
    for (let off = 0; off < perConn; off += recordBytes) {
      for (const connId of ids) {
        ts += gapNs;
        const n = Math.min(recordBytes, perConn - off);
        await write({
          type: "data",
          connId,
          direction: Direction.ServerToClient,
          offset: off,
          timestampNs: ts,
          spanNs: 10_000,
          payload: pattern.subarray(0, n),
        });
        total += n;
      }
    }
    for (const connId of ids) {
      await write({
        type: "conn-close",
        connId,
        timestampNs: ts,
        reason: CloseReason.Fin,
        initiator: CloseInitiator.Client,
        bytesClientToServer: 400,
        bytesServerToClient: perConn,
      });
    }
  }
  await flush();
  return { payloadBytes: total, blobs };
}
