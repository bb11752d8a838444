import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BlobSource } from "./blob-source.js";
import { readAhead } from "./read-ahead.js";

/**
 * Blobs whose whole reads stay open until the test lets them finish, so what is in flight at each
 * hand-out is what the read-ahead started, not what happened to finish.
 */
function blobs(sizes: readonly number[], failing: ReadonlySet<number> = new Set()) {
  const started: number[] = [];
  const open = new Set<number>();
  let peakBytes = 0;
  let peakCount = 0;
  const waiting: (() => void)[] = [];
  const list: BlobSource[] = sizes.map((size, i) => ({
    key: `b${i}`,
    size,
    read: async function* () {
      yield new Uint8Array(size).fill(i);
    },
    readBytes: async ({ allocate } = {}) => {
      started.push(i);
      open.add(i);
      const inFlight = [...open].reduce((n, j) => n + sizes[j]!, 0);
      peakBytes = Math.max(peakBytes, inFlight);
      peakCount = Math.max(peakCount, open.size);
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (failing.has(i)) throw new Error(`read of b${i} failed`);
      const out = allocate ? allocate(size).subarray(0, size) : new Uint8Array(size);
      return out.fill(i);
    },
  }));
  return {
    list,
    started,
    /** Held: handed out and not yet released by the consumer. */
    done(i: number) {
      open.delete(i);
    },
    /** Lets every started read finish. */
    flush() {
      for (const w of waiting.splice(0)) w();
    },
    get peakBytes() {
      return peakBytes;
    },
    get peakCount() {
      return peakCount;
    },
  };
}

async function consume(b: ReturnType<typeof blobs>, options: Parameters<typeof readAhead>[1]) {
  const keys: string[] = [];
  const startedAtHandOut: number[] = [];
  const tick = setInterval(() => b.flush(), 1);
  try {
    for await (const f of readAhead(b.list, options)) {
      startedAtHandOut.push(b.started.length);
      const bytes = await f.whole().catch((err: Error) => err);
      keys.push(bytes instanceof Error ? `${f.blob.key}: ${bytes.message}` : `${f.blob.key}:${bytes.length}`);
      if (!(bytes instanceof Error)) assert.ok(bytes.every((x) => x === Number(f.blob.key.slice(1))));
      f.release();
      b.done(Number(f.blob.key.slice(1)));
    }
  } finally {
    clearInterval(tick);
  }
  return { keys, startedAtHandOut };
}

describe("fetch - read-ahead", () => {
  it("without a byte budget: depth blobs ahead of the one handed out (the directory default, 2)", async () => {
    const b = blobs(Array.from({ length: 10 }, () => 1000));
    const { keys } = await consume(b, {});
    assert.deepEqual(
      keys,
      b.list.map((x) => `${x.key}:1000`),
    );
    assert.equal(b.peakCount, 3, "the next blob and 2 more");
  });

  it("a byte budget bounds the reads in flight; many small blobs are read at once", async () => {
    const b = blobs(Array.from({ length: 40 }, () => 1000));
    const { keys } = await consume(b, { depth: 64, budgetBytes: 8000 });
    assert.equal(keys.length, 40);
    assert.deepEqual(keys.slice(0, 3), ["b0:1000", "b1:1000", "b2:1000"]);
    assert.ok(b.peakBytes <= 8000 + 1000, `peak ${b.peakBytes}`);
    assert.ok(b.peakCount >= 8, `reads in flight at once: ${b.peakCount}`);
  });

  it("a blob larger than the budget is still read when it is next; those after it wait for it", async () => {
    const sizes = [1000, 50_000, 1000, 1000, 1000];
    const b = blobs(sizes);
    const { keys, startedAtHandOut } = await consume(b, { depth: 8, budgetBytes: 4000 });
    assert.deepEqual(
      keys,
      sizes.map((s, i) => `b${i}:${s}`),
    );
    // At the first hand-out b0 (and nothing past the 50 KB blob, which does not fit) was started.
    assert.equal(startedAtHandOut[0], 1);
    assert.ok(b.peakBytes <= 50_000 + 4000, `peak ${b.peakBytes}`);
  });

  it("blobs over maxBytes or of unknown size stream at their turn and take nothing of the budget", async () => {
    const b = blobs([1000, 10_000, 1000]);
    const unknown: BlobSource = {
      key: "u",
      read: async function* () {
        yield new Uint8Array(5);
      },
    };
    const keys: string[] = [];
    const tick = setInterval(() => b.flush(), 1);
    try {
      for await (const f of readAhead([b.list[0]!, b.list[1]!, unknown, b.list[2]!], {
        depth: 4,
        budgetBytes: 2000,
        maxBytes: 5000,
      })) {
        const bytes = await f.whole();
        keys.push(`${f.blob.key}:${bytes.length}`);
        f.release();
      }
    } finally {
      clearInterval(tick);
    }
    assert.deepEqual(keys, ["b0:1000", "b1:10000", "u:5", "b2:1000"]);
    assert.deepEqual(b.started, [0, 2], "b1 streamed, not read whole");
  });

  it("a read that fails is thrown by that blob's bytes at its turn; the rest go on", async () => {
    const b = blobs([1000, 1000, 1000, 1000], new Set([1]));
    const { keys } = await consume(b, { depth: 8, budgetBytes: 2500 });
    assert.deepEqual(keys, ["b0:1000", "b1: read of b1 failed", "b2:1000", "b3:1000"]);
  });
});
