import { createRequire } from "node:module";
import { crc32 as zlibCrc32 } from "node:zlib";

interface NativeCrc {
  crc32(bytes: Uint8Array, initial?: number): number;
  simd(): boolean;
}

/**
 * The native CRC-32 (native/crc32.c: carry-less multiplication, about 29 GB/s here against 6 GB/s for
 * zlib.crc32), built at install by node-gyp; zlib.crc32 when it is not there or CLOUDTAP_CRC_NATIVE=0.
 */
function loadNative(): { readonly native?: NativeCrc; readonly reason: string } {
  if (process.env["CLOUDTAP_CRC_NATIVE"] === "0") return { reason: "turned off by CLOUDTAP_CRC_NATIVE=0" };
  try {
    const native = createRequire(import.meta.url)("@cloudtap/tap-format/native") as NativeCrc;
    return native.simd() ? { native, reason: "loaded" } : { reason: "the CPU has no carry-less multiply" };
  } catch (err) {
    return { reason: `not built (${(err as Error).message.split("\n")[0]})` };
  }
}

const loaded = loadNative();

/** Which CRC-32 runs: "native" or why not. */
export const crc32Implementation: string = loaded.native ? "native" : `zlib (native ${loaded.reason})`;

/**
 * CRC-32 (IEEE 802.3, the zlib / PNG / gzip polynomial 0xEDB88320 reflected), continued from `initial`;
 * `crc32(b, crc32(a)) === crc32(a ++ b)`.
 */
export const crc32: (bytes: Uint8Array, initial?: number) => number = loaded.native
  ? loaded.native.crc32
  : (bytes, initial = 0) => zlibCrc32(bytes, initial) >>> 0;

const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

/**
 * The same CRC-32 of `bytes[start, end)` computed in JavaScript. For the 12-byte frame headers it is about
 * four times faster than the native call, whose fixed cost dominates at that size.
 */
export function crc32Short(bytes: Uint8Array, start: number, end: number): number {
  let c = -1;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
