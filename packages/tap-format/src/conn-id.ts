/** Connection ids are 16 bytes on the wire and 32 lower-case hex digits in JavaScript. */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const CONN_ID_RE = /^[0-9a-f]{32}$/;

export const CONN_ID_BYTES = 16;

export function connIdToHex(bytes: Uint8Array, offset = 0): string {
  let s = "";
  for (let i = offset; i < offset + CONN_ID_BYTES; i++) s += HEX[bytes[i]!];
  return s;
}

export function isConnId(s: string): boolean {
  return CONN_ID_RE.test(s);
}

function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  if (code >= 97 && code <= 102) return code - 87; // a-f
  return -1;
}

/** Writes a 32-hex-digit connection id into `out` at `offset`. Throws RangeError on a malformed id. */
export function writeConnId(id: string, out: Uint8Array, offset: number): void {
  if (id.length === 32) {
    let ok = true;
    for (let i = 0; i < CONN_ID_BYTES; i++) {
      const hi = nibble(id.charCodeAt(i * 2));
      const lo = nibble(id.charCodeAt(i * 2 + 1));
      if (hi < 0 || lo < 0) {
        ok = false;
        break;
      }
      out[offset + i] = (hi << 4) | lo;
    }
    if (ok) return;
  }
  throw new RangeError(`connection id must be 32 lower-case hex digits, got "${id}"`);
}

/**
 * The shard (0 .. shards - 1) of the connection whose 16-byte id starts at `offset` (every record body starts
 * with it): FNV-1a over the id's bytes, so ids that differ in any byte spread evenly. Both directions and
 * every record of a connection land in the same shard; the stitcher's workers split connections by it.
 */
export function connShard(bytes: Uint8Array, shards: number, offset = 0): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = offset; i < offset + CONN_ID_BYTES; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return (h >>> 0) % shards;
}
