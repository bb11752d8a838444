/**
 * A seeded pseudo-random generator (xoshiro128**) with named sub-streams. Everything the simulator varies is
 * drawn from one of these, so a seed fixes the whole plan. `fork(label)` derives an independent stream from the
 * seed text and the label alone, not from how much of the parent was consumed: adding a draw in one place does
 * not shift the values drawn anywhere else.
 */
import { createHash } from "node:crypto";

export interface Prng {
  /** The text this stream was seeded from (the root seed and the fork labels, joined by "/"). */
  readonly seedText: string;
  /** An independent stream for `label`. */
  fork(label: string): Prng;
  /** Uniform 32-bit unsigned integer. */
  u32(): number;
  /** Uniform in [0, 1) with 53 bits of precision. */
  float(): number;
  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks by weight; weights need not sum to 1. */
  weighted<T>(items: readonly (readonly [T, number])[]): T;
  /** Exponentially distributed with the given mean. */
  exponential(mean: number): number;
  /** Log-normally distributed: `median * exp(sigma * N(0,1))`. */
  logNormal(median: number, sigma: number): number;
  /** Fills `out` with pseudo-random bytes. */
  fill(out: Uint8Array): void;
  /** `bytes` pseudo-random bytes as lower-case hex. */
  hex(bytes: number): string;
  /** A new array with the items in a random order (Fisher-Yates). */
  shuffled<T>(items: readonly T[]): T[];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

class Xoshiro128 implements Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | undefined;

  constructor(readonly seedText: string) {
    const h = createHash("sha256").update(seedText, "utf8").digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12);
    // The all-zero state is the one state xoshiro cannot leave; SHA-256 makes it practically unreachable.
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1;
  }

  fork(label: string): Prng {
    return new Xoshiro128(`${this.seedText}/${label}`);
  }

  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c = (this.c ^ this.a) >>> 0;
    this.d = (this.d ^ this.b) >>> 0;
    this.b = (this.b ^ this.c) >>> 0;
    this.a = (this.a ^ this.d) >>> 0;
    this.c = (this.c ^ t) >>> 0;
    this.d = rotl(this.d, 11);
    return result;
  }

  float(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new RangeError(`int(${min}, ${max}): bounds must be integers with min <= max`);
    }
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.float() * items.length)] as T;
  }

  weighted<T>(items: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of items) total += w;
    if (!(total > 0)) throw new RangeError("weighted pick needs a positive total weight");
    let x = this.float() * total;
    for (const [item, w] of items) {
      if (x < w) return item;
      x -= w;
    }
    return items[items.length - 1]![0];
  }

  exponential(mean: number): number {
    return -Math.log(1 - this.float()) * mean;
  }

  private normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    // Box-Muller; 1 - float() is in (0, 1], so the logarithm is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.float()));
    const theta = 2 * Math.PI * this.float();
    this.spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  fill(out: Uint8Array): void {
    const whole = out.length & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      const v = this.u32();
      out[i] = v & 0xff;
      out[i + 1] = (v >>> 8) & 0xff;
      out[i + 2] = (v >>> 16) & 0xff;
      out[i + 3] = v >>> 24;
    }
    if (i < out.length) {
      let v = this.u32();
      for (; i < out.length; i++) {
        out[i] = v & 0xff;
        v >>>= 8;
      }
    }
  }

  hex(bytes: number): string {
    const b = new Uint8Array(bytes);
    this.fill(b);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
  }

  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      const t = out[i] as T;
      out[i] = out[j] as T;
      out[j] = t;
    }
    return out;
  }
}

/** A stream seeded from `seed` (any string or number; equal text gives an equal stream). */
export function createPrng(seed: string | number | bigint): Prng {
  return new Xoshiro128(`tapsim:${String(seed)}`);
}
