import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FrameSink } from "@cloudtap/packet";
import { TimeOrder } from "./time-order.js";

type Entry = { tag: number; ns: bigint; sink: string };

/** A sink that records what it got: the first byte of each frame (its tag) and its time. */
class Recorder implements FrameSink {
  readonly got: Entry[] = [];
  ended = 0;
  private frame = new Uint8Array(0);
  constructor(
    readonly name: string,
    private readonly log: Entry[] = [],
  ) {}
  begin(length: number): Uint8Array {
    this.frame = new Uint8Array(length);
    return this.frame;
  }
  commit(timestampNs: bigint, offsetNs = 0): void {
    const entry = { tag: this.frame[0]!, ns: timestampNs + BigInt(offsetNs), sink: this.name };
    this.got.push(entry);
    this.log.push(entry);
  }
  end(): void {
    this.ended++;
  }
}

function put(sink: FrameSink, tag: number, ns: bigint, offsetNs = 0, length = 60): void {
  const at = sink.beginAt!(length);
  sink.buffer![at] = tag;
  sink.commit(ns, offsetNs);
}

describe("time order - frames of several flows released in time order", () => {
  it("time order - release up to a time, stable for equal times, the rest at the end", () => {
    const log: Entry[] = [];
    const order = new TimeOrder();
    const a = new Recorder("a", log);
    const b = new Recorder("b", log);
    const va = order.view("a", a);
    const vb = order.view("b", b);
    put(va, 1, 100n);
    put(va, 2, 100n, 50); // 150
    put(vb, 3, 120n);
    put(vb, 4, 120n); // equal time: after 3
    put(va, 5, 90n, 70); // 160
    put(vb, 6, 300n);
    assert.equal(log.length, 0, "nothing before a release");
    order.release(150n);
    assert.deepEqual(
      log.map((e) => e.tag),
      [1, 3, 4, 2],
    );
    order.releaseAll();
    assert.deepEqual(
      log.map((e) => e.tag),
      [1, 3, 4, 2, 5, 6],
    );
    assert.deepEqual(
      log.map((e) => e.ns),
      [100n, 120n, 120n, 150n, 160n, 300n],
    );
    assert.equal(order.stats.lateFrames, 0);
  });

  it("time order - a frame older than one already written: written at once and counted", () => {
    const order = new TimeOrder();
    const a = new Recorder("a");
    const va = order.view("a", a);
    put(va, 1, 1000n);
    order.release(1000n);
    put(va, 2, 400n);
    assert.deepEqual(
      a.got.map((e) => e.tag),
      [1, 2],
    );
    assert.equal(order.stats.lateFrames, 1);
    assert.equal(order.stats.maxLatenessNs, 600);
  });

  it("time order - a flow's end reaches its sink after its last frame; holds() until then", () => {
    const order = new TimeOrder();
    const a = new Recorder("a");
    const va = order.view("conn-a", a);
    put(va, 1, 10n);
    va.end();
    assert.equal(a.ended, 0);
    assert.equal(order.holds("conn-a"), true);
    order.release(10n);
    assert.equal(a.ended, 1);
    assert.equal(order.holds("conn-a"), false);
    const vb = order.view("conn-b", a);
    vb.end();
    assert.equal(a.ended, 2, "a flow with nothing held ends at once");
  });

  it("time order - over the byte cap the oldest are released early, counted, nothing dropped", () => {
    const order = new TimeOrder({ maxBytes: 10 * 1000 });
    const a = new Recorder("a");
    const va = order.view("a", a);
    for (let i = 0; i < 30; i++) put(va, i, BigInt(1000 + i), 0, 1000);
    assert.ok(order.stats.capReleases > 0);
    assert.ok(order.stats.peakHeldBytes <= 11 * 1000);
    order.releaseAll();
    assert.equal(a.got.length, 30);
    assert.equal(order.stats.lateFrames, 0);
  });

  it("time order - a store spanning years: exact nanoseconds on both sides of the jump", () => {
    const order = new TimeOrder();
    const a = new Recorder("a");
    const va = order.view("a", a);
    const y2023 = 1_677_384_899_142_760_001n;
    const y2025 = 1_749_306_151_121_100_003n;
    put(va, 1, y2023);
    put(va, 2, y2023, 7);
    order.release(y2023 + 10n);
    put(va, 3, y2025, 1);
    put(va, 4, y2025);
    put(va, 5, y2025 - 5n); // before the new base: its own time, not a negative offset
    order.releaseAll();
    assert.deepEqual(
      a.got.map((e) => e.ns),
      [y2023, y2023 + 7n, y2025 - 5n, y2025, y2025 + 1n],
    );
    assert.equal(order.stats.lateFrames, 0);
  });

  it("time order - many frames over many slabs come out sorted and intact", () => {
    const order = new TimeOrder();
    const a = new Recorder("a");
    const va = order.view("a", a);
    let seed = 7;
    const times: bigint[] = [];
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const ns = BigInt(i * 1000 + (seed % 5000));
      times.push(ns);
      put(va, i & 0xff, ns, 0, 1500);
      if (i % 500 === 499) order.release(BigInt((i - 10) * 1000));
    }
    order.releaseAll();
    assert.equal(order.stats.lateFrames, 0);
    assert.deepEqual(
      a.got.map((e) => e.ns),
      [...times].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
    );
    assert.deepEqual(
      a.got.map((e) => e.tag),
      times
        .map((ns, i) => ({ ns, tag: i & 0xff }))
        .sort((x, y) => (x.ns < y.ns ? -1 : x.ns > y.ns ? 1 : 0))
        .map((e) => e.tag),
      "each frame's bytes travel with it",
    );
  });
});
