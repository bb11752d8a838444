/**
 * The internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * `onesComplementSum` returns the folded 16-bit one's-complement sum, not yet complemented, so sums of
 * several pieces can be chained through `initial`. Every piece except the last must have an even length:
 * a piece of odd length is padded with a zero byte, which is only right at the very end of the data.
 */

function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Folded one's-complement sum of `data` as big-endian 16-bit words, added to `initial` (a folded sum). */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = data.length & ~1;
  for (let i = 0; i < even; i += 2) {
    sum += (data[i]! << 8) | data[i + 1]!;
    // Fold now and then so the accumulator stays an exact small integer.
    if (sum > 0x7fff_0000) sum = fold(sum);
  }
  if (even !== data.length) sum += data[even]! << 8;
  return fold(sum);
}

/** The checksum to store in a header: the complement of the sum. Zero-fill the checksum field first. */
export function internetChecksum(data: Uint8Array, initial = 0): number {
  return ~onesComplementSum(data, initial) & 0xffff;
}

/**
 * Folded sum of the TCP/UDP pseudo-header: IPv4 (RFC 9293 3.1) when the addresses are 4 bytes, IPv6
 * (RFC 8200 8.1) when they are 16. `length` is the transport header plus payload length.
 */
export function pseudoHeaderSum(
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
  length: number,
): number {
  if (source.length !== destination.length || (source.length !== 4 && source.length !== 16)) {
    throw new RangeError(
      `pseudo-header needs two 4- or two 16-byte addresses, got ${source.length} and ${destination.length}`,
    );
  }
  let sum = onesComplementSum(source);
  sum = onesComplementSum(destination, sum);
  // IPv4 carries a 16-bit length, IPv6 a 32-bit one; summing both halves covers either.
  return fold(sum + protocol + Math.floor(length / 0x10000) + (length & 0xffff));
}

/**
 * The TCP or UDP checksum of `segment` (header and payload) under the given pseudo-header. With the
 * checksum field zeroed this is the value to store (UDP stores a result of 0 as 0xffff); with the field
 * as received it is 0 when the segment is intact.
 */
export function transportChecksum(
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
  segment: Uint8Array,
): number {
  return internetChecksum(segment, pseudoHeaderSum(source, destination, protocol, segment.length));
}

/**
 * Updates a stored checksum after one 16-bit word of the covered data changed from `oldWord` to
 * `newWord` (RFC 1624 equation 3), without summing the data again.
 */
export function updateChecksum16(checksum: number, oldWord: number, newWord: number): number {
  return ~fold((~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** `updateChecksum16` for a 32-bit field (an IPv4 address, a sequence number). */
export function updateChecksum32(checksum: number, oldValue: number, newValue: number): number {
  const high = updateChecksum16(checksum, oldValue >>> 16, newValue >>> 16);
  return updateChecksum16(high, oldValue & 0xffff, newValue & 0xffff);
}
