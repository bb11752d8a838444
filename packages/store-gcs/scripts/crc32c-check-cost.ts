/**
 * The cost of the CRC32C check of a whole GCS read on the main thread: 48 MiB (CHECK_MIB) of random bytes
 * in chunks of 64 KiB (CHECK_CHUNK_KIB, about what node's HTTP client yields), through the check as the
 * store runs it (`checkCrc32c`, crc32c of @cloudtap/tap-format) and through the one before it (the
 * library's CRC32C, update per chunk, then validate), each the best of RUNS (default 15): the minimum, as
 * the machine may be loaded. With CLOUDTAP_CRC_NATIVE=0 the first is the JavaScript fallback.
 *
 * Usage: node --import tsx packages/store-gcs/scripts/crc32c-check-cost.ts
 */
import { randomBytes } from "node:crypto";
import { crc32cImplementation } from "@cloudtap/tap-format";
import { CRC32C } from "@google-cloud/storage";
import { checkCrc32c } from "../src/crc32c-check.js";

const mib = Number(process.env["CHECK_MIB"] ?? 48);
const chunkBytes = Number(process.env["CHECK_CHUNK_KIB"] ?? 64) * 1024;
const runs = Number(process.env["RUNS"] ?? 15);
const bytes = randomBytes(mib * 1024 * 1024);
const parts: Uint8Array[] = [];
for (let at = 0; at < bytes.length; at += chunkBytes) parts.push(bytes.subarray(at, at + chunkBytes));
const reference = new CRC32C();
reference.update(bytes);
const expected = reference.toString();

async function* body(): AsyncGenerator<Uint8Array> {
  yield* parts;
}

async function best(run: () => Promise<void>): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    await run();
    min = Math.min(min, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return min;
}

// The same walk over the chunks with no check: what the check adds is the difference.
const bare = await best(async () => {
  for await (const _ of body());
});
const now = await best(async () => {
  for await (const _ of checkCrc32c(body(), expected, "o"));
});
const library = await best(async () => {
  const crc = new CRC32C();
  for await (const chunk of body()) crc.update(chunk as Buffer);
  if (!crc.validate(expected)) throw new Error("the library's CRC32C disagrees");
});
const row = (s: number) => `${(s - bare).toFixed(4)} s (${((mib * 1.048576) / (s - bare)).toFixed(0)} MB/s)`;
console.log(
  JSON.stringify({
    mib,
    chunkKiB: chunkBytes / 1024,
    runs,
    crc32cImplementation,
    bareWalkSeconds: Number(bare.toFixed(4)),
    check: row(now),
    libraryCheckBefore: row(library),
  }),
);
