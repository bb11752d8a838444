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
  });

  it("service-kit counters - a counter never goes down; a name is one kind; names are checked", () => {
    const c = createCounters();
    assert.throws(() => c.counter("x").add(-1), RangeError);
    c.counter("y");
    assert.throws(() => c.gauge("y"), TypeError);
    assert.throws(() => c.counter("Bad Name"), RangeError);
  });
});
