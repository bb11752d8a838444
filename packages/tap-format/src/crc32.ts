import { crc32 as zlibCrc32 } from "node:zlib";

/**
 * CRC-32 (IEEE 802.3, the zlib / PNG / gzip polynomial 0xEDB88820 reflected), continued from `initial`.
 * node's zlib.crc32 is native; `crc32(b, crc32(a)) === crc32(a ++ b)`.
 */
export function crc32(bytes: Uint8Array, initial = 0): number {
  return zlibCrc32(bytes, initial) >>> 0;
}
