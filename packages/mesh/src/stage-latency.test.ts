import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FrameBatchRecorder } from "@cloudtap/mirror";
import { createCounters } from "@cloudtap/service-kit";
import { ArrivalClock, forEachFrameMs, MeshStage, StageLatency, stageQuantiles } from "./stage-latency.js";

describe("mesh - stage latency histograms", () => {
  it("observations land in their buckets, and the quantiles come back from snapshots of several instances", () => {
    const a = createCounters();
    const b = createCounters();
    const ha = new StageLatency(a, MeshStage.StitchHold);
    const hb = new StageLatency(b, MeshStage.StitchHold);
    // 98 items at 10 ms, 2 at 1900 ms (between the 1750 and 2000 bounds), over two instances.
    ha.observe(10, 50);
    hb.observe(10, 48);
    hb.observe(1900, 2);
    new StageLatency(a, MeshStage.FetchPickup).observe(-3);
    assert.equal(a.snapshot()["mesh_stage_ms{le=10,stage=stitch_hold}"], 50);
    assert.equal(a.snapshot()["mesh_stage_ms{le=1,stage=fetch_pickup}"], 1, "a negative time counts as 0");
    const q = stageQuantiles([a.snapshot(), b.snapshot()]);
    const hold = q[MeshStage.StitchHold]!;
    assert.equal(hold.count, 100);
    assert.ok(hold.p50Ms > 5 && hold.p50Ms <= 10, `p50 ${hold.p50Ms}`);
    assert.ok(hold.p99Ms > 1750 && hold.p99Ms <= 2000, `p99 ${hold.p99Ms}`);
    assert.equal(hold.meanMs, (98 * 10 + 2 * 1900) / 100);
    assert.equal(q[MeshStage.FetchPickup]!.count, 1);
    assert.equal(q[MeshStage.EgressHold], undefined, "a stage nothing passed has no figures");
    // Beyond the largest bound: given as that bound.
    const c = createCounters();
    new StageLatency(c, MeshStage.EgressWrite).observe(120_000);
    assert.equal(stageQuantiles([c.snapshot()])[MeshStage.EgressWrite]!.p99Ms, 60_000);
  });

  it("the arrival clock gives the first message whose newest record reached a time", () => {
    const clock = new ArrivalClock();
    assert.equal(clock.arrivalOf(5), undefined);
    clock.note(100, 1000);
    clock.note(90, 1100); // not newer: the record time was reached before
    clock.note(200, 1200);
    clock.note(300, 1300);
    assert.equal(clock.arrivalOf(50), 1000);
    assert.equal(clock.arrivalOf(100), 1000);
    assert.equal(clock.arrivalOf(150), 1200);
    assert.equal(clock.arrivalOf(300), 1300);
    assert.equal(clock.arrivalOf(301), undefined);
    clock.forgetBefore(250);
    assert.equal(clock.arrivalOf(250), 1300);
    assert.equal(clock.arrivalOf(300), 1300);
  });

  it("forEachFrameMs reads every frame's time from a recorded batch, past the other events", () => {
    const rec = new FrameBatchRecorder();
    const flow = rec.forFlow({
      connId: "c1",
      variant: "original",
      transport: "tcp",
      ipVersion: 4,
      client: { address: "10.0.0.1", port: 1000 },
      server: { address: "10.0.0.2", port: 80 },
      attributes: {},
    });
    const stamps = [1_764_600_000_123_456_789n, 1_764_600_000_223_456_789n, 2n ** 40n + 7_000_000n];
    rec.embedKeys("CLIENT_RANDOM aa bb\n");
    for (const ts of stamps) {
      flow.begin(60).fill(1);
      flow.commit(ts, 0, 60);
    }
    flow.end?.();
    const seen: number[] = [];
    for (const batch of rec.takeBatches(1 << 20)) forEachFrameMs(batch.bytes, (ms) => seen.push(ms));
    assert.equal(seen.length, stamps.length);
    for (let i = 0; i < stamps.length; i++) assert.ok(Math.abs(seen[i]! - Number(stamps[i]!) / 1e6) < 0.001);
  });
});
