/**
 * The integrity check of a whole GCS read: the body's CRC32C against the one the store keeps of the object
 * (the `crc32c=` of `x-goog-hash`, base64 of the big-endian value), as `@google-cloud/storage` checks its
 * downloads. The CRC is `crc32c` of @cloudtap/tap-format (the CPU's instruction when the native part is
 * built), not the library's JavaScript one: 0.32 s per 48 MiB on the stitch's main thread before.
 */
import { crc32c } from "@cloudtap/tap-format";

/** A CRC32C as GCS writes it: base64 of its 4 bytes, big-endian. */
export function crc32cBase64(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString("base64");
}

/**
 * The body, failing at its end with code CONTENT_DOWNLOAD_MISMATCH (the library's) when its CRC32C is not
 * the store's (`expected`, base64); `name` is the object's in the message.
 */
export async function* checkCrc32c(
  body: AsyncIterable<Uint8Array>,
  expected: string,
  name: string,
): AsyncGenerator<Uint8Array> {
  let crc = 0;
  for await (const chunk of body) {
    crc = crc32c(chunk, crc);
    yield chunk;
  }
  const actual = crc32cBase64(crc);
  if (actual !== expected)
    throw Object.assign(new Error(`${name}: the body's CRC32C is ${actual}, the store's ${expected}`), {
      code: "CONTENT_DOWNLOAD_MISMATCH",
    });
}
