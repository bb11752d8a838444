import { createRequire } from "node:module";
import { crc32 as zlibCrc32 } from "node:zlib";

interface NativeCrc {
  crc32(bytes: Uint8Array, initial?: number): number;
  simd(): boolean;
  /** Absent from an addon built before CRC-32C was added to it. */
  crc32c?(bytes: Uint8Array, initial?: number): number;
  crc32cTable?(bytes: Uint8Array, initial?: number): number;
  sse42?(): boolean;
}

/**
 * The native part (native/crc32.c), built at install by node-gyp; not there, or not used with
 * CLOUDTAP_CRC_NATIVE=0, then the JavaScript paths below run.
 */
function loadAddon(): { readonly addon?: NativeCrc; readonly reason: string } {
  if (process.env["CLOUDTAP_CRC_NATIVE"] === "0") return { reason: "turned off by CLOUDTAP_CRC_NATIVE=0" };
  try {
    return {
      addon: createRequire(import.meta.url)("@cloudtap/tap-format/native") as NativeCrc,
      reason: "loaded",
    };
  } catch (err) {
    return { reason: `not built (${(err as Error).message.split("\n")[0]})` };
  }
}

const addon = loadAddon();

/**
 * The native CRC-32 (carry-less multiplication, about 29 GB/s here against 6 GB/s for zlib.crc32) when the
 * CPU has it; zlib.crc32 otherwise.
 */
const loaded: { readonly native?: NativeCrc; readonly reason: string } = addon.addon
  ? addon.addon.simd()
    ? { native: addon.addon, reason: "loaded" }
    : { reason: "the CPU has no carry-less multiply" }
  : addon;

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

/** CRC-32C tables for slicing by 8: TABLE_C[k * 256 + b] is byte b followed by k zero bytes. */
const TABLE_C = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  TABLE_C[n] = c;
}
for (let i = 256; i < 8 * 256; i++) {
  const prev = TABLE_C[i - 256]!;
  TABLE_C[i] = TABLE_C[prev & 0xff]! ^ (prev >>> 8);
}

/**
 * CRC-32C (Castagnoli, 0x1EDC6F41 reflected: 0x82F63B78) in JavaScript, eight bytes a step (slicing by 8),
 * continued from `initial` like `crc32c`. The fallback when the native part is not built; exported for the
 * tests that hold the two to each other.
 */
export function crc32cJs(bytes: Uint8Array, initial = 0): number {
  checkInitial(initial);
  let c = ~initial;
  const n = bytes.length;
  let i = 0;
  for (const end = n - (n & 7); i < end; i += 8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      TABLE_C[1792 + (lo & 0xff)]! ^
      TABLE_C[1536 + ((lo >>> 8) & 0xff)]! ^
      TABLE_C[1280 + ((lo >>> 16) & 0xff)]! ^
      TABLE_C[1024 + (lo >>> 24)]! ^
      TABLE_C[768 + bytes[i + 4]!]! ^
      TABLE_C[512 + bytes[i + 5]!]! ^
      TABLE_C[256 + bytes[i + 6]!]! ^
      TABLE_C[bytes[i + 7]!]!;
  }
  for (; i < n; i++) c = TABLE_C[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** As the native call and zlib.crc32: an initial value is an integer in [0, 2^32). */
function checkInitial(initial: number): void {
  if (!(Number.isInteger(initial) && initial >= 0 && initial <= 0xffffffff))
    throw new RangeError("crc32c: initial must be an integer in [0, 2^32)");
}

const nativeC = addon.addon?.crc32c ? addon.addon : undefined;

/** Which CRC-32C runs: "native (sse4.2)", "native (table)", or "javascript (native ...)" and why. */
export const crc32cImplementation: string = nativeC
  ? `native (${nativeC.sse42?.() ? "sse4.2" : "table"})`
  : `javascript (native ${addon.addon ? "built before CRC-32C: rebuild it" : addon.reason})`;

/**
 * CRC-32C (Castagnoli: iSCSI, ext4, and the checksum Google Cloud Storage keeps of every object),
 * continued from `initial`: `crc32c(b, crc32c(a)) === crc32c(a ++ b)`. Native: the CPU's `crc32`
 * instruction (SSE4.2) on three streams, or slicing-by-8 tables in C on other CPUs; `crc32cJs` when the
 * native part is not built.
 */
export const crc32c: (bytes: Uint8Array, initial?: number) => number = nativeC
  ? (nativeC.crc32c as (bytes: Uint8Array, initial?: number) => number)
  : crc32cJs;

/** The native table path on any CPU (tests compare it with the instruction path); undefined when not built. */
export const crc32cNativeTable: ((bytes: Uint8Array, initial?: number) => number) | undefined =
  nativeC?.crc32cTable;
