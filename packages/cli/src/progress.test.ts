import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProgressLine, formatProgress } from "./progress.js";

function stream(isTTY: boolean) {
  const written: string[] = [];
  return { isTTY, written, write: (t: string) => written.push(t) };
}

describe("cli - progress line", () => {
  it("counts, totals, rate and time left", () => {
    const line = formatProgress(
      { items: 3, bytes: 2 * 1024 * 1024, detail: "4 flows" },
      { unit: "blobs", totalItems: 6, totalBytes: 4 * 1024 * 1024 },
      1,
    );
    assert.equal(line, "3/6 blobs, 2.0 MiB/4.0 MiB, 4 flows, 2 MB/s, ETA 1 s");
    assert.equal(
      formatProgress({ items: 10 }, { unit: "blobs", totalItems: 40 }, 2),
      "10/40 blobs, 5 blobs/s, ETA 6 s",
    );
    assert.equal(formatProgress({ bytes: 512 }, { unit: "bytes" }, 1), "512 B, 0 MB/s");
  });

  it("draws on a terminal at most 5 times a second and clears itself; nothing otherwise or with --quiet", () => {
    let now = 0;
    const tty = stream(true);
    const p = createProgressLine(tty, { unit: "blobs", totalItems: 3, now: () => now });
    p.update({ items: 1 });
    now = 100;
    p.update({ items: 2 }); // within 200 ms of the last draw
    p.update({ items: 3 }); // the last one is always drawn
    p.done();
    assert.equal(tty.written.length, 3);
    assert.match(tty.written[1]!, /3\/3 blobs/);
    assert.equal(tty.written[2], "\r\x1b[K");
    for (const [s, quiet] of [
      [stream(false), false],
      [stream(true), true],
    ] as const) {
      const q = createProgressLine(s, { unit: "blobs", quiet });
      q.update({ items: 1 });
      q.done();
      assert.equal(s.written.length, 0);
      assert.equal(q.active, false);
    }
  });
});
