/**
 * The time order and a TLS flow's held first chunks: with a cleartext variant, a connection's first bytes
 * are held (copied) until they tell whether it is TLS, and go out with their own times when they do, or when
 * the connection ends; with key embedding, a TLS 1.3 original flow's chunks wait for their keys' verdict the
 * same way. The order must not pass the oldest of them, or those frames are written late (out of order).
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

const T0 = 1_764_000_000_000_000_000n;
const MS = 1_000_000n;
const A = "a1".repeat(16);
const B = "b2".repeat(16);
const PORT_A = 40_001;
const PORT_B = 40_002;

function recorder(): FrameSink & { frames: { port: number; ns: bigint }[] } {
  let frame = new Uint8Array(0);
  const frames: { port: number; ns: bigint }[] = [];
  return {
    frames,
    begin(length: number) {
      frame = new Uint8Array(length);
      return frame;
    },
    commit(timestampNs: bigint, offsetNs = 0) {
      const v = new DataView(frame.buffer);
      const tcp = 14 + (frame[14]! & 0x0f) * 4;
      const src = v.getUint16(tcp);
      const dst = v.getUint16(tcp + 2);
      // The cleartext variant maps 443 to 80: the client port names the connection either way.
      frames.push({ port: src === 443 || src === 80 ? dst : src, ns: timestampNs + BigInt(offsetNs) });
    },
  };
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

function data(connId: string, offset: number, payload: Uint8Array, ms: bigint): TapRecord {
  return {
    type: "data",
    connId,
    direction: Direction.ClientToServer,
    offset,
    timestampNs: T0 + ms * MS,
    spanNs: 0,
    payload,
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
    for (let ms = 50n, off = 0; ms <= 1000n; ms += 50n, off += 100)
      s.accept(data(B, off, new Uint8Array(100).fill(0x43), ms));
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
    for (let i = 1; i < sink.frames.length; i++)
      assert.ok(sink.frames[i]!.ns >= sink.frames[i - 1]!.ns, `frame ${i} stamped before frame ${i - 1}`);
  });
});
