import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { CRC32C } from "@google-cloud/storage";
import { checkCrc32c, crc32cBase64 } from "./crc32c-check.js";

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of body) n += chunk.length;
  return n;
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

describe("store-gcs - the CRC32C check of whole reads", () => {
  it("computes the value the library computes (base64, big-endian), whatever the chunking", async () => {
    for (const [length, chunk] of [
      [0, 1],
      [1, 1],
      [4095, 1000],
      [65_536, 16_384],
      [1_000_003, 65_536],
    ] as const) {
      const bytes = randomBytes(length);
      const library = new CRC32C();
      library.update(bytes);
      assert.equal(await drain(checkCrc32c(chunks(bytes, chunk), library.toString(), "o")), length);
      assert.equal(crc32cBase64(CRC32C.from(library.toString()).valueOf()), library.toString());
    }
  });

  it("fails at the body's end with CONTENT_DOWNLOAD_MISMATCH when one byte differs, after yielding every chunk", async () => {
    const bytes = randomBytes(100_000);
    const library = new CRC32C();
    library.update(bytes);
    const changed = Buffer.from(bytes);
    changed[54_321]! ^= 0x10;
    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of checkCrc32c(chunks(changed, 8192), library.toString(), "data/b.ctap"))
          seen += chunk.length;
      })(),
      (err: Error & { code?: string }) =>
        err.code === "CONTENT_DOWNLOAD_MISMATCH" &&
        err.message.startsWith("data/b.ctap: the body's CRC32C is ") &&
        err.message.endsWith(`, the store's ${library.toString()}`),
    );
    assert.equal(seen, changed.length);
  });
});
