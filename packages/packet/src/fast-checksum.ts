/**
 * The one's-complement sum of a byte range at a few bytes per nanosecond: 32-bit big-endian words summed into
 * a double (exact up to 2^53, so no carry handling inside the loop), folded to 16 bits at the end. It equals
 * `onesComplementSum` of the same bytes when `start` is even relative to the checksummed data, i.e. when the
 * range starts at an even offset of the header or segment being summed.
 */
export function sumRange(view: DataView, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  const end4 = start + ((end - start) & ~3);
  // 2^53 / 2^32 = 2^21 words before the accumulator could lose precision: fold every 2^20 words.
  while (i < end4) {
    const stop = Math.min(end4, i + 4 * (1 << 20));
    for (; i < stop; i += 4) sum += view.getUint32(i);
    sum = (sum % 0x1_0000_0000) + Math.floor(sum / 0x1_0000_0000);
  }
  if (end - i >= 2) {
    sum += view.getUint16(i);
    i += 2;
  }
  if (i < end) sum += view.getUint8(i) << 8;
  return fold32(sum);
}

/** Folds a sum of up to 2^53 into 16 bits of one's-complement sum. */
export function fold32(sum: number): number {
  let s = (sum % 0x1_0000_0000) + Math.floor(sum / 0x1_0000_0000);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}
