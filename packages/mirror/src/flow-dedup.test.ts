import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrameFlowContext } from "@cloudtap/packet";
import { FlowDedup, frameDigest } from "./flow-dedup.js";
import type { ReplayTarget } from "./frame-batch.js";

const flow = (connId: string, variant: "original" | "cleartext" = "original"): FrameFlowContext => ({
  connId,
  variant,
  transport: "tcp",
  ipVersion: 4,
  client: { address: "10.0.0.1", port: 40000 },
  server: { address: "10.0.0.2", port: 443 },
  attributes: {},
});

/** A target that records what reaches it: "conn:ts:first byte" per frame, and the key-log texts. */
function recording(): { target: ReplayTarget; frames: string[]; keys: string[] } {
  const frames: string[] = [];
  const keys: string[] = [];
  const sink = (tag: string) => {
    let buf = new Uint8Array(0);
    return {
      begin: (n: number) => {
        buf = new Uint8Array(n);
        return buf;
      },
      commit: (ts: bigint) => void frames.push(`${tag}:${ts}:${buf[0]}`),
      end: () => {},
    };
  };
  const none = sink("-");
  return {
    frames,
    keys,
    target: {
      begin: none.begin,
      commit: none.commit,
      forFlow: (c) => sink(c.connId.slice(0, 2)),
      embedKeys: (t) => void keys.push(t),
    },
  };
}

function send(sink: ReturnType<FlowDedup["forFlow"]>, ts: bigint, byte: number, length = 60): void {
  sink.begin(length).fill(byte);
  sink.commit(ts);
}

describe("FlowDedup", () => {
  it("FlowDedup - a rebuilt flow's copies of written frames are dropped, the rest written", () => {
    const r = recording();
    const d = new FlowDedup(r.target);
    const a = d.forFlow(flow("aa".repeat(16)));
    send(a, 1n, 1);
    send(a, 2n, 2);
    a.end(); // cut (a stitcher stopped with it open)
    const again = d.forFlow(flow("aa".repeat(16)));
    send(again, 1n, 1); // the same frame
    send(again, 2n, 9); // same time, other bytes (another packet layout): written
    send(again, 3n, 3);
    again.end();
    assert.deepEqual(r.frames, ["aa:1:1", "aa:2:2", "aa:2:9", "aa:3:3"]);
    assert.equal(d.stats.duplicateFrames, 1);
    // Another variant of the same connection is another flow.
    const clear = d.forFlow(flow("aa".repeat(16), "cleartext"));
    send(clear, 1n, 1);
    clear.end();
    assert.equal(r.frames.length, 5);
  });

  it("FlowDedup - key-log texts are embedded once", () => {
    const r = recording();
    const d = new FlowDedup(r.target);
    d.embedKeys("CLIENT_RANDOM a b\n");
    d.embedKeys("CLIENT_RANDOM a b\n");
    d.embedKeys("CLIENT_RANDOM c d\n");
    assert.deepEqual(r.keys, ["CLIENT_RANDOM a b\n", "CLIENT_RANDOM c d\n"]);
    assert.equal(d.stats.duplicateKeyLogs, 1);
  });

  it("FlowDedup - bounded: the flow that ended longest ago is forgotten, counted; open flows are never", () => {
    const r = recording();
    const d = new FlowDedup(r.target, { maxEntries: 4 });
    const one = d.forFlow(flow("01".repeat(16)));
    send(one, 1n, 1);
    send(one, 2n, 2);
    one.end();
    const two = d.forFlow(flow("02".repeat(16)));
    send(two, 1n, 1);
    send(two, 2n, 2);
    send(two, 3n, 3); // over the cap: flow 01 (ended) is forgotten
    assert.equal(d.stats.forgottenFlows, 1);
    assert.equal(d.size, 3);
    send(two, 4n, 4);
    send(two, 5n, 5); // only an open flow is left: written, its digest not kept
    assert.equal(d.stats.unrecordedFrames, 1);
    // A copy of the forgotten flow is written again (at least once, never lost).
    const oneAgain = d.forFlow(flow("01".repeat(16)));
    send(oneAgain, 1n, 1);
    assert.equal(r.frames.filter((f) => f === "01:1:1").length, 2);
  });

  it("FlowDedup - the state survives a restart: snapshot or deltas, loaded into a new instance", () => {
    const r = recording();
    const d = new FlowDedup(r.target);
    const a = d.forFlow(flow("aa".repeat(16)));
    send(a, 1n, 1);
    const delta1 = d.takeDelta();
    send(a, 2n, 2);
    d.embedKeys("K\n");
    const delta2 = d.takeDelta();
    assert.equal(d.takeDelta().flows.length, 0);
    for (const state of [[d.snapshot()], [delta1, delta2]]) {
      const r2 = recording();
      const d2 = new FlowDedup(r2.target);
      for (const s of state) d2.load(JSON.parse(JSON.stringify(s)));
      const again = d2.forFlow(flow("aa".repeat(16)));
      send(again, 1n, 1);
      send(again, 2n, 2);
      send(again, 3n, 3);
      d2.embedKeys("K\n");
      assert.deepEqual(r2.frames, ["aa:3:3"]);
      assert.deepEqual(r2.keys, []);
    }
  });
});

/**
 * The digest written plainly (BigInt halves, DataView reads, the words read listed first): the first 32
 * words, every eighth from the 32nd (index 31) while before the last 4, and the last 4.
 */
function referenceDigest(bytes: Uint8Array, timestampNs: bigint, originalLength: number): number {
  const P1 = 0x01000193;
  const P2 = 0x5bd1e995;
  let h1 = 0x811c9dc5 ^ bytes.length;
  let h2 = 0x9747b28c ^ originalLength;
  const lo = Number(timestampNs & 0xffffffffn) | 0;
  const hi = Number((timestampNs >> 32n) & 0xffffffffn) | 0;
  h1 = Math.imul(h1 ^ lo, P1);
  h2 = Math.imul(h2 ^ hi, P2);
  h1 = Math.imul(h1 ^ hi, P1);
  h2 = Math.imul(h2 ^ lo, P2);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const words = bytes.length >>> 2;
  const head = Math.min(words, 32);
  const tail = Math.max(head, words - 4);
  const read: number[] = [];
  for (let i = 0; i < head; i++) read.push(i);
  for (let i = head - 1 + 8; i < tail; i += 8) read.push(i);
  for (let i = tail; i < words; i++) read.push(i);
  for (const i of read) {
    const w = view.getUint32(i << 2, true);
    h1 = Math.imul(h1 ^ w, P1);
    h2 = Math.imul((h2 ^ w) + (h2 >>> 15), P2);
  }
  for (let i = words << 2; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i]!, P1);
    h2 = Math.imul((h2 ^ bytes[i]!) + (h2 >>> 15), P2);
  }
  h1 ^= h1 >>> 16;
  h2 ^= h2 >>> 13;
  return (h1 >>> 0) * 0x100000 + (h2 >>> 12);
}

describe("mirror - frameDigest", () => {
  it("reads the frame's first 128 bytes, every eighth word after, and its last 16 (aligned or not, every length mod 4, extreme timestamps)", () => {
    const backing = new Uint8Array(4096 + 8);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 131 + 7) & 0xff;
    const stamps = [0n, 1n, -1n, 1_764_000_000_123_456_789n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n];
    for (const offset of [0, 1, 2, 3, 4])
      for (const length of [0, 1, 3, 4, 5, 54, 127, 128, 129, 143, 144, 150, 1514, 4096])
        for (const ts of stamps) {
          const frame = backing.subarray(offset, offset + length);
          assert.equal(frameDigest(frame, ts, length + 9), referenceDigest(frame, ts, length + 9));
        }
  });
});

describe("mirror - frameDigest's reach", () => {
  it("a change in the headers, the timestamp, the lengths, a word read or the last bytes changes the digest", () => {
    const frame = new Uint8Array(1514);
    for (let i = 0; i < frame.length; i++) frame[i] = (i * 7 + 3) & 0xff;
    const base = frameDigest(frame, 5n, 1514);
    assert.notEqual(frameDigest(frame, 6n, 1514), base);
    assert.notEqual(frameDigest(frame, 5n, 1515), base);
    assert.notEqual(frameDigest(frame.subarray(0, 1513), 5n, 1514), base);
    // Bytes 0-127 (headers), byte 124 + 32k (the words read between), the last 16.
    for (const at of [0, 13, 50, 127, 124 + 32, 124 + 32 * 20, 1498, 1513]) {
      const changed = frame.slice();
      changed[at]! ^= 0x40;
      assert.notEqual(frameDigest(changed, 5n, 1514), base, `byte ${at}`);
    }
  });
});

describe("mirror - FlowDedup in front of a strict target", () => {
  it("a dropped copy is never begun in the target (a pcapng writer refuses key logs inside a frame)", () => {
    let open = false;
    let committed = 0;
    const frameSink = {
      begin: (n: number) => {
        open = true;
        return new Uint8Array(n);
      },
      commit: () => {
        open = false;
        committed++;
      },
    };
    const target: ReplayTarget = {
      ...frameSink,
      forFlow: () => ({ ...frameSink, end: () => {} }),
      embedKeys: () => assert.equal(open, false, "key log while a frame is begun"),
    };
    const dedup = new FlowDedup(target);
    for (let copy = 0; copy < 3; copy++) {
      const f = dedup.forFlow(flow("c1"));
      // The copies come the two ways a frame reaches the de-duplicator: staged (begin, commit) or whole.
      if (copy === 2) f.writeFrame?.(new Uint8Array(60).fill(7), 1000n);
      else {
        f.begin(60).fill(7);
        f.commit(1000n);
      }
      dedup.embedKeys(`CLIENT_RANDOM ${copy}`);
      f.end();
    }
    assert.equal(committed, 1);
    assert.equal(dedup.stats.duplicateFrames, 2);
  });
});
