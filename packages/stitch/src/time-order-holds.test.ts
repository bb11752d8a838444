/**
 * The time order and what is held before it with its own, older, times. Bytes buffered behind a hole hold
 * back only what is newer than they are: a connection with a hole anywhere used to hold every other
 * connection's frames until it closed (42 MB held on a 133 MB simulated store of two tappers, against 9.6 MB
 * now); frames older than the oldest buffered byte go out, and whatever the hole's bytes become (filled, or
 * given up as a gap) is never late. The same for a TLS flow's first chunks: with a cleartext variant they
 * are held (copied) until they tell whether the flow is TLS, and with key embedding a TLS 1.3 original
 * flow's chunks wait for their keys' verdict; the order must not pass the oldest of them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrameSink } from "@cloudtap/packet";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  Direction,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { createKeyStore } from "@cloudtap/tls";
import { Stitcher } from "./stitcher.js";
import { parsingSink } from "./test-frame-sink.js";

const T0 = 1_764_000_000_000_000_000n;
const MS = 1_000_000n;
const A = "a1".repeat(16);
const B = "b2".repeat(16);

/** Frames as (client port, time), in the order the sink got them. */
function recorder(): FrameSink & { frames: { port: number; ns: bigint }[] } {
  const sink = parsingSink((_frame, v, tcp, ns) => {
    const src = v.getUint16(tcp);
    const dst = v.getUint16(tcp + 2);
    // The cleartext variant maps 443 to 80: the client port names the connection either way.
    return { port: src === 443 || src === 80 ? dst : src, ns };
  });
  return Object.assign(sink, { frames: sink.items });
}

function open(connId: string, port: number): ConnOpenRecord {
  return {
    type: "conn-open",
    connId,
    timestampNs: T0,
    transport: Transport.Tcp,
    ipVersion: 4,
    client: { address: "10.1.2.3", port },
    server: { address: "192.0.2.80", port: 443 },
    midstream: false,
    tcp: { clientMss: 1460, serverMss: 1460, clientIsn: 1000, serverIsn: 5000 },
    attributes: {},
  };
}

function data(connId: string, offset: number, bytes: number | Uint8Array, ms: bigint): TapRecord {
  return {
    type: "data",
    connId,
    direction: Direction.ClientToServer,
    offset,
    timestampNs: T0 + ms * MS,
    spanNs: 0,
    payload: typeof bytes === "number" ? new Uint8Array(bytes).fill(0x43) : bytes,
  };
}

function close(connId: string, ms: bigint, bytes: number): TapRecord {
  return {
    type: "conn-close",
    connId,
    timestampNs: T0 + ms * MS,
    reason: CloseReason.Fin,
    initiator: CloseInitiator.Client,
    bytesClientToServer: bytes,
    bytesServerToClient: 0,
  };
}

const PORT_A = 40_001;
const PORT_B = 40_002;

/** A holds a hole from +10 ms (its bytes at 200.. buffered at +300 ms); B sends every 50 ms up to +1 s. */
function withHole(): { s: Stitcher; sink: ReturnType<typeof recorder> } {
  const sink = recorder();
  const s = new Stitcher({ sink });
  s.noRecordsBefore(T0);
  s.accept(open(A, PORT_A));
  s.accept(open(B, PORT_B));
  s.accept(data(A, 0, 100, 10n));
  s.accept(data(A, 200, 100, 300n));
  for (let ms = 50n, off = 0; ms <= 1000n; ms += 50n, off += 100) s.accept(data(B, off, 100, ms));
  s.noRecordsBefore(T0 + 1000n * MS);
  s.flushOlderThan(T0 + 1000n * MS);
  return { s, sink };
}

function assertInOrder(frames: readonly { ns: bigint }[]): void {
  for (let i = 1; i < frames.length; i++)
    assert.ok(frames[i]!.ns >= frames[i - 1]!.ns, `frame ${i} stamped before frame ${i - 1}`);
}

describe("stitch - the time order waits for the oldest byte behind a hole, not for every hole", () => {
  it("stitch - another connection's frames older than the buffered bytes go out while the hole is open", () => {
    const { s, sink } = withHole();
    assert.ok(s.table.stats.bufferedBytes > 0, "A's bytes after the hole are buffered");
    const bFrames = sink.frames.filter((f) => f.port === PORT_B);
    assert.ok(bFrames.length > 0, "B's frames before +300 ms were released");
    assert.ok(
      sink.frames.every((f) => f.ns <= T0 + 300n * MS),
      "nothing newer than the oldest buffered byte was released",
    );
    assert.ok(
      bFrames.some((f) => f.ns >= T0 + 250n * MS),
      "B's frames up to the buffered byte's time are out",
    );
    assertInOrder(sink.frames);
  });

  it("stitch - the hole filled: nothing late, everything in time order", () => {
    const { s, sink } = withHole();
    s.accept(data(A, 100, 100, 1010n));
    s.flushOlderThan(T0 + 1010n * MS);
    s.flushAll();
    assert.equal(s.stats.timeOrder.lateFrames, 0);
    assertInOrder(sink.frames);
  });

  it("stitch - the hole given up as a gap: its bytes keep their own time and are not late", () => {
    const { s, sink } = withHole();
    // Far later: the gap wait ends and the bytes behind the hole come out at +300 ms.
    s.noRecordsBefore(T0 + 120_000n * MS);
    s.flushOlderThan(T0 + 120_000n * MS);
    assert.equal(s.table.stats.bufferedBytes, 0, "the hole was given up");
    s.flushAll();
    assert.equal(s.stats.timeOrder.lateFrames, 0);
    assert.ok(s.table.stats.gaps > 0);
    assertInOrder(sink.frames);
  });
});

describe("stitch - the time order waits for a TLS flow's held first chunks", () => {
  it("stitch - a connection still telling whether it is TLS holds the order at its first chunk, and nothing is late", () => {
    const sink = recorder();
    const s = new Stitcher({ sink, tls: { keys: createKeyStore(), variant: "both" } });
    s.noRecordsBefore(T0);
    s.accept(open(A, PORT_A));
    s.accept(open(B, PORT_B));
    // The start of a TLS record header: it may be TLS, so the bytes are held until more come.
    const head = Uint8Array.of(0x16, 0x03, 0x01);
    s.accept(data(A, 0, head, 10n));
    for (let ms = 50n, off = 0; ms <= 1000n; ms += 50n, off += 100) s.accept(data(B, off, 100, ms));
    s.noRecordsBefore(T0 + 1000n * MS);
    s.flushOlderThan(T0 + 1000n * MS);
    assert.ok(
      sink.frames.every((f) => f.ns <= T0 + 10n * MS),
      "nothing newer than the held chunk was released",
    );
    // A ends: its held chunk goes out with its own time (+10 ms), behind nothing newer.
    s.accept(close(A, 1010n, head.length));
    s.noRecordsBefore(T0 + 1010n * MS);
    s.flushOlderThan(T0 + 1010n * MS);
    s.flushAll();
    assert.ok(
      sink.frames.some((f) => f.port === PORT_A && f.ns === T0 + 10n * MS),
      "A's held chunk was written with its time",
    );
    assert.equal(s.stats.timeOrder.lateFrames, 0, "no frame written after the order passed it");
    assertInOrder(sink.frames);
  });
});
