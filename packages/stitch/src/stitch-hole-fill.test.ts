/**
 * The direction order when a hole fill releases a direction's bytes at once (hand-built records, the two
 * ways a shuffled store makes them): the bytes that waited behind the hole are not written before the other
 * direction's records of the same time span that had not been read yet; every data segment is stamped at
 * its own record's time, the packets are in time order, and no ACK precedes the data it acknowledges.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrameSink } from "@cloudtap/packet";
import { type ConnOpenRecord, Direction, type TapRecord, Transport } from "@cloudtap/tap-format";
import { Stitcher } from "./stitcher.js";
import { parsingSink } from "./test-frame-sink.js";

const T0 = 1_764_000_000_000_000_000n;
const MS = 1_000_000n;
const CONN = "5e".repeat(16);

/** A segment as written: side (0 client), stream offset of its payload, payload length, ack offset, time. */
interface Segment {
  readonly dir: 0 | 1;
  readonly offset: number;
  readonly len: number;
  /** The other side's stream offset it acknowledges (after the handshake), or -1 without ACK. */
  readonly ack: number;
  /** A FIN: it takes one sequence number after the payload. */
  readonly fin: boolean;
  readonly ns: bigint;
}

const CLIENT_ISN = 1000;
const SERVER_ISN = 5000;

/** A sink that parses each Ethernet/IPv4/TCP frame it is given. */
function recorder(): FrameSink & { segments: Segment[] } {
  const sink = parsingSink((frame, v, tcp, ns): Segment | undefined => {
    const dir = v.getUint16(tcp) === 50_123 ? 0 : 1;
    const flags = frame[tcp + 13]!;
    if (flags & 0x02) return undefined; // SYN, SYN-ACK: before any data
    const headerLength = (frame[tcp + 12]! >> 4) * 4;
    const isn = dir === 0 ? CLIENT_ISN : SERVER_ISN;
    const peerIsn = dir === 0 ? SERVER_ISN : CLIENT_ISN;
    return {
      dir,
      offset: v.getUint32(tcp + 4) - isn - 1,
      len: frame.length - tcp - headerLength,
      ack: flags & 0x10 ? v.getUint32(tcp + 8) - peerIsn - 1 : -1,
      fin: (flags & 0x01) !== 0,
      ns,
    };
  });
  return Object.assign(sink, { segments: sink.items });
}

const open: ConnOpenRecord = {
  type: "conn-open",
  connId: CONN,
  timestampNs: T0,
  transport: Transport.Tcp,
  ipVersion: 4,
  client: { address: "10.1.2.3", port: 50_123 },
  server: { address: "192.0.2.80", port: 443 },
  midstream: false,
  tcp: { clientMss: 1460, serverMss: 1460, clientIsn: CLIENT_ISN, serverIsn: SERVER_ISN },
  attributes: {},
};

function data(direction: Direction, offset: number, length: number, ms: bigint): TapRecord {
  return {
    type: "data",
    connId: CONN,
    direction,
    offset,
    timestampNs: T0 + ms * MS,
    spanNs: 0,
    payload: new Uint8Array(length).fill(direction === Direction.ClientToServer ? 0x43 : 0x53),
  };
}

/**
 * Stitches blobs as runStitchJob does, in start-time order: each blob's start (ms from T0) is the watermark
 * while it is read, and the table is flushed after it.
 */
function stitch(
  blobs: readonly { readonly startMs: bigint; readonly records: readonly TapRecord[] }[],
): Segment[] {
  const sink = recorder();
  const s = new Stitcher({ sink });
  for (const blob of blobs) {
    s.noRecordsBefore(T0 + blob.startMs * MS);
    for (const r of blob.records) s.accept(r);
    s.flushOlderThan();
  }
  s.flushAll();
  return sink.segments;
}

/** Data segments as "c2s@offset +ms" in the order written. */
function dataOrder(segments: readonly Segment[]): string[] {
  return segments
    .filter((g) => g.len > 0)
    .map((g) => `${g.dir === 0 ? "c2s" : "s2c"}@${g.offset} +${(g.ns - T0) / MS}`);
}

/** Time order, and every ACK no earlier than the segment that sent the last byte it acknowledges. */
function assertCausal(segments: readonly Segment[]): void {
  for (let i = 1; i < segments.length; i++)
    assert.ok(segments[i]!.ns >= segments[i - 1]!.ns, `segment ${i} stamped before segment ${i - 1}`);
  for (const [i, g] of segments.entries()) {
    if (g.ack <= 0) continue;
    const by = segments.find(
      (s) => s.dir !== g.dir && (s.len > 0 || s.fin) && s.offset + s.len + (s.fin ? 1 : 0) >= g.ack,
    );
    assert.ok(by, `segment ${i} acknowledges ${g.ack} bytes never sent`);
    assert.ok(by.ns <= g.ns, `segment ${i} acknowledges data stamped after it`);
    assert.ok(segments.indexOf(by) < i, `segment ${i} acknowledges data written after it`);
  }
}

describe("stitch - a hole fill does not put a direction ahead of the other", () => {
  it("stitch - a record moved into the blob before its conn-open: the other direction's earlier record comes first", () => {
    // The client's third flight (offset 100, +50 ms) landed in the previous blob; the blob of the
    // connection holds the open, the client's first flight (+10), the server's answer (+40) and more (+60).
    const segments = stitch([
      { startMs: -100n, records: [data(Direction.ClientToServer, 100, 60, 50n)] },
      {
        startMs: 0n,
        records: [
          open,
          data(Direction.ClientToServer, 0, 100, 10n),
          data(Direction.ServerToClient, 0, 200, 40n),
          data(Direction.ServerToClient, 200, 30, 60n),
        ],
      },
    ]);
    assert.deepEqual(dataOrder(segments), ["c2s@0 +10", "s2c@0 +40", "c2s@100 +50", "s2c@200 +60"]);
    assertCausal(segments);
  });

  it("stitch - neighbours of a stream swapped inside a blob: the server's first record is not pushed after the client's next", () => {
    // The server's second record (+50) was swapped ahead of its first (+20), which now follows the client's
    // second record (+30).
    const segments = stitch([
      {
        startMs: 0n,
        records: [
          open,
          data(Direction.ClientToServer, 0, 100, 10n),
          data(Direction.ServerToClient, 100, 40, 50n),
          data(Direction.ClientToServer, 100, 20, 30n),
          data(Direction.ServerToClient, 0, 100, 20n),
          data(Direction.ClientToServer, 120, 10, 70n),
        ],
      },
    ]);
    assert.deepEqual(dataOrder(segments), [
      "c2s@0 +10",
      "s2c@0 +20",
      "c2s@100 +30",
      "s2c@100 +50",
      "c2s@120 +70",
    ]);
    assertCausal(segments);
  });

  it("stitch - records in order are written as they are read, without holding", () => {
    const sink = recorder();
    const s = new Stitcher({ sink });
    for (const r of [
      open,
      data(Direction.ClientToServer, 0, 100, 10n),
      data(Direction.ServerToClient, 0, 200, 40n),
      data(Direction.ClientToServer, 100, 60, 50n),
    ])
      s.accept(r);
    s.flushAll();
    assert.equal(s.stats.heldEvents, 0);
    assert.deepEqual(dataOrder(sink.segments), ["c2s@0 +10", "s2c@0 +40", "c2s@100 +50"]);
    assertCausal(sink.segments);
  });
});
