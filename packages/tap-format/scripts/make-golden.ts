/**
 * Regenerates the golden blobs in ../testdata from src/test-records.ts:
 *   node --import tsx packages/tap-format/scripts/make-golden.ts
 * Only needed when the format itself changes (a new minor version): the tests check that the writer still
 * produces these exact bytes.
 */
import { writeFileSync } from "node:fs";
import { createCtapWriter, MemorySink } from "../src/index.js";
import { sampleRecords } from "../src/test-records.js";

const START = 1_764_000_000_000_000_000n;
const dir = new URL("../testdata/", import.meta.url);

async function blob(compression: "none" | "gzip"): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "gw-test-1", sequence: 42n, startNs: START, compression });
  for (const r of sampleRecords()) await w.write(r);
  await w.finish(START + 5_000_000n);
  return sink.bytes();
}

const plain = await blob("none");
writeFileSync(new URL("sample-v1.ctap", dir), plain);
writeFileSync(new URL("sample-v1-gzip.ctap", dir), await blob("gzip"));
writeFileSync(new URL("sample-v1-truncated.ctap", dir), plain.subarray(0, plain.length - 30));
console.log(`wrote ${plain.length}-byte golden blobs to ${dir.pathname}`);
