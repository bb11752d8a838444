/**
 * Wrap-aware TCP sequence number arithmetic (RFC 9293 section 3.4 / RFC 1982 serial numbers).
 *
 * A sequence number is a uint32 that wraps; comparing two of them is only meaningful when they are less
 * than 2^31 apart, which holds for any two numbers of one TCP stream that a receive window can contain.
 * Every comparison in the code base goes through these functions, never through `<` on raw numbers.
 */

declare const tcpSeqBrand: unique symbol;

/** A TCP sequence or acknowledgment number: an integer in [0, 2^32). */
export type TcpSeq = number & { readonly [tcpSeqBrand]: true };

const MODULUS = 0x1_0000_0000;

/** Brands an integer as a sequence number, reducing it modulo 2^32 (negative values wrap too). */
export function toSeq(n: number): TcpSeq {
  if (!Number.isInteger(n)) throw new RangeError(`sequence number must be an integer, got ${n}`);
  return (((n % MODULUS) + MODULUS) % MODULUS) as TcpSeq;
}

/** `seq + n` modulo 2^32; `n` may be negative. */
export function seqAdd(seq: TcpSeq, n: number): TcpSeq {
  return toSeq(seq + n);
}

/**
 * The signed distance `a - b` in [-2^31, 2^31): positive when `a` is after `b`. At exactly 2^31 apart the
 * order is undefined by RFC 1982; this returns -2^31.
 */
export function seqDiff(a: TcpSeq, b: TcpSeq): number {
  return ((a - b) | 0) as number;
}

export function seqLt(a: TcpSeq, b: TcpSeq): boolean {
  return seqDiff(a, b) < 0;
}

export function seqLte(a: TcpSeq, b: TcpSeq): boolean {
  return seqDiff(a, b) <= 0;
}

export function seqGt(a: TcpSeq, b: TcpSeq): boolean {
  return seqDiff(a, b) > 0;
}

export function seqGte(a: TcpSeq, b: TcpSeq): boolean {
  return seqDiff(a, b) >= 0;
}

/** The later of two sequence numbers. */
export function seqMax(a: TcpSeq, b: TcpSeq): TcpSeq {
  return seqDiff(a, b) >= 0 ? a : b;
}
