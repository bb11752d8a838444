/**
 * The payload checksum of packet synthesis, native when the addon is built: a separate entry
 * (`@cloudtap/packet/copy-sum`) because it loads a native part through node:module, and the package's main
 * entry stays free of any `node:*` module (egress's neutral entry imports it, and is held to that).
 */
import { createRequire } from "node:module";
import { sumRange } from "./fast-checksum.js";

interface NativeChecksum {
  copySum(
    src: Uint8Array,
    srcAt: number,
    length: number,
    dst: Uint8Array,
    dstAt: number,
    initial: number,
  ): number;
  sum(bytes: Uint8Array, at: number, length: number, initial: number): number;
}

/**
 * The native sum (native/checksum.c: the copy and the sum in one pass, 16 bytes a step), built at install by
 * node-gyp; the JavaScript loops below when it is not there or CLOUDTAP_CHECKSUM_NATIVE=0.
 */
function loadNative(): { readonly native?: NativeChecksum; readonly reason: string } {
  if (process.env["CLOUDTAP_CHECKSUM_NATIVE"] === "0")
    return { reason: "turned off by CLOUDTAP_CHECKSUM_NATIVE=0" };
  try {
    return {
      native: createRequire(import.meta.url)("@cloudtap/packet/native") as NativeChecksum,
      reason: "loaded",
    };
  } catch (err) {
    return { reason: `not built (${(err as Error).message.split("\n")[0]})` };
  }
}

const loaded = loadNative();
const native = loaded.native;

/** Which sum runs for payloads: "native" or why not. */
export const checksumImplementation: string = native ? "native" : `JavaScript (native ${loaded.reason})`;

/**
 * Below this many bytes the JavaScript copy and sum is as fast as the native call, whose fixed cost (about
 * 0.1 us here) dominates; above it the native pass is about four times faster per byte.
 */
const NATIVE_FROM = 192;

/**
 * Copies `src[srcAt, srcAt + length)` into `dst` at `dstAt` and returns the one's-complement sum of those
 * bytes continued from `initial` (as `sumRange` does: `srcAt` is even relative to the summed data). `view`,
 * a DataView over `src`'s bytes, spares the JavaScript path one allocation. The ranges must not overlap.
 */
export function copyAndSum(
  src: Uint8Array,
  srcAt: number,
  length: number,
  dst: Uint8Array,
  dstAt: number,
  initial = 0,
  view?: DataView,
): number {
  if (native !== undefined && length >= NATIVE_FROM)
    return native.copySum(src, srcAt, length, dst, dstAt, initial);
  dst.set(src.subarray(srcAt, srcAt + length), dstAt);
  return sumRange(
    view ?? new DataView(src.buffer, src.byteOffset, src.byteLength),
    srcAt,
    srcAt + length,
    initial,
  );
}

/** The one's-complement sum of `bytes[at, at + length)` continued from `initial`, as `sumRange`. */
export function sumBytesOf(bytes: Uint8Array, at: number, length: number, initial = 0): number {
  if (native !== undefined && length >= NATIVE_FROM) return native.sum(bytes, at, length, initial);
  return sumRange(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), at, at + length, initial);
}
