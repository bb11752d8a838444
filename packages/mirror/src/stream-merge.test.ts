import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrameFlowContext, FrameSink } from "@cloudtap/packet";
import { FrameBatchError, FrameBatchRecorder, type ReplayTarget } from "./frame-batch.js";
import { StreamMerge } from "./stream-merge.js";

const T0 = 1764028800000000000n;

function context(connId: string): FrameFlowContext {
  return {
    connId,
    variant: "original",
    transport: "udp",
    ipVersion: 4,
    client: { address: "10.0.0.1", port: 5000 },
    server: { address: "192.0.2.1", port: 53 },
    attributes: {},
  };
}

/** A sink that logs what reaches it, in order. */
function loggingTarget() {
  const log: string[] = [];
  const frames: bigint[] = [];
  const frame = (flow: string): FrameSink => {
    let buffer = new Uint8Array(0);
    return {
      begin: (n) => {
        buffer = new Uint8Array(n);
        return buffer;
      },
      commit: (ts) => {
        frames.push(ts);
        log.push(`frame ${flow} ${ts - T0} #${buffer[0]}`);
      },
    };
  };
  const target: ReplayTarget = {
    ...frame("-"),
    forFlow(ctx) {
      log.push(`start ${ctx.connId}`);
      return { ...frame(ctx.connId), end: () => log.push(`end ${ctx.connId}`) };
    },
    embedKeys: (text) => log.push(`keys ${text}`),
  };
  return { target, log, frames };
}

/** One stream's batches: a flow with frames at the given offsets (ns from T0), each frame's first byte its index. */
function batchOf(recorder: FrameBatchRecorder, flow: FrameSink & { end(): void }, offsets: number[]) {
  for (const [i, off] of offsets.entries()) {
    flow.begin(4).set([i, 0, 0, 0]);
    flow.commit(T0 + BigInt(off));
  }
  return recorder.take().bytes;
}

describe("mirror - StreamMerge", () => {
  it("mirror - merges two streams in time order up to the lowest watermark, flow events in stream order", () => {
    const { target, log, frames } = loggingTarget();
    const merge = new StreamMerge(target);
    const ra = new FrameBatchRecorder();
    const rb = new FrameBatchRecorder();
    const fa = ra.forFlow(context("a"));
    ra.embedKeys("KEYS-A");
    const fb = rb.forFlow(context("b"));
    const a = merge.open("a");
    const b = merge.open("b");

    const a1 = a.push(batchOf(ra, fa, [10, 20, 30, 40]));
    assert.equal(a1.frames, 4);
    // b has sent nothing: nothing may go out yet (b may still send a frame stamped before 10).
    assert.equal(merge.release(), 0);
    assert.ok(a.applied < a1.endEvent);
    const b1 = b.push(batchOf(rb, fb, [15, 25]));
    // Lowest watermark: b's 25.
    assert.equal(merge.release(), 4);
    assert.deepEqual(
      frames.map((t) => t - T0),
      [10n, 15n, 20n, 25n],
    );
    assert.equal(b.applied, b1.endEvent, "b's batch is written whole");
    assert.ok(a.applied < a1.endEvent, "a's batch still has frames held");
    // b goes idle: a is no longer held back by it.
    b.watermark(25n + T0, true);
    assert.equal(merge.release(), 2);
    assert.equal(a.applied, a1.endEvent);
    // b sends again after idling: waited for again; a frame of b older than what was written is late.
    const b2 = b.push(batchOf(rb, fb, [35, 50]));
    assert.equal(merge.release(), 1, "b's 35 (after a's 40 was written: late); b's 50 waits for a");
    fb.end();
    fa.end();
    a.push(ra.take().bytes);
    b.push(rb.take().bytes);
    a.end();
    assert.equal(merge.release(), 1);
    assert.equal(b.applied, b2.endEvent + 1);
    assert.equal(merge.stats.lateFrames, 1, "b's 35 after a's 40");
    assert.equal(merge.stats.frames, 8);
    assert.deepEqual(log.filter((l) => / a|KEYS-A/.test(l)).slice(0, 3), [
      "start a",
      "keys KEYS-A",
      "frame a 10 #0",
    ]);
    assert.ok(log.indexOf("end a") > log.indexOf("frame a 40 #3"));
    assert.equal(log.filter((l) => l.startsWith("end ")).length, 2);
  });

  it("mirror - an ended stream stops limiting; its held frames and open flows still come out", () => {
    const { target, log, frames } = loggingTarget();
    const merge = new StreamMerge(target);
    const ra = new FrameBatchRecorder();
    const rb = new FrameBatchRecorder();
    const fa = ra.forFlow(context("a"));
    const fb = rb.forFlow(context("b"));
    const a = merge.open("a");
    const b = merge.open("b");
    a.push(batchOf(ra, fa, [5, 50]));
    b.push(batchOf(rb, fb, [10]));
    assert.equal(merge.release(), 2);
    b.end();
    assert.equal(merge.release(), 1, "a alone: its own frames are at or below its watermark");
    assert.deepEqual(
      log.filter((l) => l.startsWith("end ")),
      ["end b"],
      "b's open flow ended with b",
    );
    a.end();
    assert.equal(merge.release(), 0);
    assert.deepEqual(
      frames.map((t) => t - T0),
      [5n, 10n, 50n],
    );
    assert.equal(log.filter((l) => l.startsWith("end ")).length, 2, "open flows ended with their streams");
    assert.equal(merge.streams.length, 0);
  });

  it("mirror - bounded: beyond maxHeldBytes the oldest go out, counted; nothing is lost", () => {
    const { target, frames } = loggingTarget();
    const merge = new StreamMerge(target, { maxHeldBytes: 40 });
    const ra = new FrameBatchRecorder();
    const fa = ra.forFlow(context("a"));
    const a = merge.open("a");
    merge.open("b"); // never sends: would stall a forever without the bound
    a.push(batchOf(ra, fa, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    assert.equal(merge.release(), 7, "48 bytes held > 40: written down to 20");
    assert.equal(merge.stats.overflowFrames, 7);
    assert.equal(merge.heldFrameBytes, 20);
    assert.equal(merge.releaseAll(), 5);
    assert.equal(frames.length, 12);
    assert.equal(merge.stats.lateFrames, 0);
  });

  it("mirror - a malformed batch is refused whole, with a typed error", () => {
    const { target } = loggingTarget();
    const merge = new StreamMerge(target);
    const a = merge.open("a");
    const r = new FrameBatchRecorder();
    const f = r.forFlow(context("a"));
    const good = batchOf(r, f, [1, 2]);
    assert.throws(() => a.push(good.subarray(0, good.length - 1)), FrameBatchError);
    const orphan = new FrameBatchRecorder();
    orphan.forFlow(context("x"));
    orphan.take();
    const stray = orphan.forFlow(context("y"));
    orphan.take();
    stray.begin(1);
    stray.commit(T0);
    assert.throws(() => a.push(orphan.take().bytes), /unknown flow 1/);
    assert.equal(merge.heldFrameBytes, 0);
    a.push(good);
    a.end();
    assert.equal(merge.release(), 2);
  });
});
