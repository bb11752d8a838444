/**
 * Property tests: whatever bytes arrive, in whatever chunking, the reader ends with records or one of its
 * typed errors: never another exception, never a hang. Bounded run counts keep CI fast; raise
 * FAST_CHECK_RUNS locally for a longer soak.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createCtapWriter, isCtapError, MemorySink, readCtap } from "./index.js";
import { sampleRecords } from "./test-records.js";

const RUNS = Number(process.env.FAST_CHECK_RUNS ?? 1000);

async function* chunks(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let p = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(c, bytes.length);
    if (at > p) {
      yield bytes.subarray(p, at);
      p = at;
    }
  }
  if (p < bytes.length) yield bytes.subarray(p);
}

/** Drains the reader; returns "ok" or the error's class name. Throws if the error is not a CtapError. */
async function drain(bytes: Uint8Array, cuts: number[], resync: boolean): Promise<string> {
  try {
    let n = 0;
    for await (const _ of readCtap(chunks(bytes, cuts), {
      maxFrameBytes: 4096,
      onCorruption: resync ? "resync" : "throw",
    })) {
      // Each record consumes at least a 16-byte frame header: more items than that means a loop.
      if (++n > bytes.length) throw new Error("reader yielded more items than the input can hold");
    }
    return "ok";
  } catch (err) {
    if (!isCtapError(err)) throw err;
    return err.name;
  }
}

const valid = new Map<string, Uint8Array>();
async function validBlob(compression: "none" | "gzip" = "none"): Promise<Uint8Array> {
  let blob = valid.get(compression);
  if (!blob) {
    const sink = new MemorySink();
    const w = createCtapWriter(sink, { tapperId: "fuzz", sequence: 1n, startNs: 1n, compression });
    for (const r of sampleRecords()) await w.write(r);
    await w.finish(2n);
    blob = sink.bytes();
    valid.set(compression, blob);
  }
  return blob;
}

describe("tap-format - fuzz", () => {
  it("arbitrary bytes give only typed errors", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.array(fc.nat(600), { maxLength: 8 }),
        fc.boolean(),
        async (bytes, cuts, resync) => {
          await drain(bytes, cuts, resync);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a valid header followed by arbitrary bytes gives only typed errors", async () => {
    const blob = await validBlob();
    const headerBytes = new DataView(blob.buffer, blob.byteOffset).getUint32(12, true);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 800 }), fc.boolean(), async (tail, resync) => {
        const bytes = new Uint8Array(headerBytes + tail.length);
        bytes.set(blob.subarray(0, headerBytes));
        bytes.set(tail, headerBytes);
        await drain(bytes, [headerBytes + 3], resync);
      }),
      { numRuns: RUNS },
    );
  });

  it("bit flips and truncations of a valid blob give only typed errors", async () => {
    const blob = await validBlob();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(blob.length - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
        fc.nat(blob.length),
        fc.array(fc.nat(blob.length), { maxLength: 6 }),
        fc.boolean(),
        async (flips, keep, cuts, resync) => {
          const bytes = blob.slice(0, Math.max(keep, 0));
          for (const [at, mask] of flips) if (at < bytes.length) bytes[at]! ^= mask;
          const outcome = await drain(bytes, cuts, resync);
          if (flips.length === 0 && keep === blob.length) assert.equal(outcome, "ok");
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("bit flips in a gzip-compressed blob give only typed errors", async () => {
    const blob = await validBlob("gzip");
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 60, max: blob.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.boolean(),
        async (flips, resync) => {
          const bytes = blob.slice();
          for (const [at, mask] of flips) bytes[at]! ^= mask;
          await drain(bytes, [], resync);
        },
      ),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  });
});
