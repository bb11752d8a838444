/**
 * The one's-complement sum of a byte range at a few bytes per nanosecond: 32-bit big-endian words summed into
 * four doubles (exact up to 2^53, so no carry handling inside the loop; four, so that the additions do not
 * wait on each other), folded to 16 bits at the end. It equals `onesComplementSum` of the same bytes when
 * `start` is even relative to the checksummed data, i.e. when the range starts at an even offset of the
 * header or segment being summed.
 */
export function sumRange(view: DataView, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  const end16 = start + ((end - start) & ~15);
  // Each accumulator takes one word in four: after 2^18 rounds each is below 2^50 and their sum below 2^52,
  // exact: folded there.
  while (i < end16) {
    const stop = Math.min(end16, i + 16 * (1 << 18));
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    for (; i < stop; i += 16) {
      a += view.getUint32(i);
      b += view.getUint32(i + 4);
      c += view.getUint32(i + 8);
      d += view.getUint32(i + 12);
    }
    sum = fold32(sum + a + b + c + d);
  }
  for (; i + 4 <= end; i += 4) sum += view.getUint32(i);
  if (end - i >= 2) {
    sum += view.getUint16(i);
    i += 2;
  }
  if (i < end) sum += view.getUint8(i) << 8;
  return fold32(sum);
}

/**
 * Folds a sum of up to 2^53 into 16 bits of one's-complement sum. A sum above 2^32 is first folded with
 * arithmetic until it fits 32 bits: after one step of 32 bits the value can still exceed 2^32 (a low word
 * near 2^32 plus the high part), and a bit operation there would drop that carry (it did: one wrong checksum
 * in about 10^7 full-size segments).
 */
export function fold32(sum: number): number {
  let s = sum;
  if (s > 0xffff_ffff) {
    s = (s % 0x1_0000) + Math.floor(s / 0x1_0000);
    if (s > 0xffff_ffff) s = (s % 0x1_0000) + Math.floor(s / 0x1_0000);
  }
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}
