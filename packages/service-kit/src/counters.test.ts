import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createCounters } from "./counters.js";

describe("service-kit counters", () => {
  it("service-kit counters - counters, labelled series and gauges in one plain snapshot", () => {
    const c = createCounters();
    c.counter("blobs_done").add();
    c.counter("blobs_done").add(2);
    c.counter("blobs_quarantined", { reason: "bad-magic" }).add();
    c.counter("blobs_quarantined", { reason: "vanished" }).add(4);
    c.gauge("lag_ms").set(120);
    c.gauge("lag_ms").add(-20);
    assert.deepEqual(c.snapshot(), {
      blobs_done: 3,
      "blobs_quarantined{reason=bad-magic}": 1,
      "blobs_quarantined{reason=vanished}": 4,
      lag_ms: 100,
    });
    assert.equal(c.counter("blobs_done").value, 3);
    // The same values, name and labels apart (what the metrics exporter reads).
    assert.deepEqual(c.series?.(), [
      { name: "blobs_done", labels: {}, kind: "counter", value: 3 },
      { name: "blobs_quarantined", labels: { reason: "bad-magic" }, kind: "counter", value: 1 },
      { name: "blobs_quarantined", labels: { reason: "vanished" }, kind: "counter", value: 4 },
      { name: "lag_ms", labels: {}, kind: "gauge", value: 100 },
    ]);
  });

  it("service-kit counters - a counter never goes down; a name is one kind; names are checked", () => {
    const c = createCounters();
    assert.throws(() => c.counter("x").add(-1), RangeError);
    c.counter("y");
    assert.throws(() => c.gauge("y"), TypeError);
    assert.throws(() => c.counter("Bad Name"), RangeError);
  });
});
