/**
 * When a datagram may leave: rate limits (token buckets, packets/s and bits/s) and pacing (the original
 * inter-packet timing, scaled). Time is an input (milliseconds on a monotonic clock), so the schedule is
 * tested without waiting.
 */

/**
 * A token bucket: `ratePerSecond` tokens accrue continuously up to `burst`. `dueAt` says when `amount`
 * tokens will be there (now, if they are); `take` spends them (the balance may dip below zero by what the
 * caller's timer slack let through, and is paid back before the next packet).
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number | undefined;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  private refill(nowMs: number): void {
    if (this.lastMs !== undefined && nowMs > this.lastMs) {
      this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) * this.ratePerSecond) / 1000);
    }
    if (this.lastMs === undefined || nowMs > this.lastMs) this.lastMs = nowMs;
  }

  dueAt(amount: number, nowMs: number): number {
    this.refill(nowMs);
    if (this.tokens >= amount) return nowMs;
    return nowMs + ((amount - this.tokens) * 1000) / this.ratePerSecond;
  }

  take(amount: number, nowMs: number): void {
    this.refill(nowMs);
    this.tokens -= amount;
  }
}

/** Burst allowance: 10 ms worth of the rate, and at least one packet (or one 9000-byte jumbo frame of bits). */
export function burstFor(ratePerSecond: number, minimum: number): number {
  return Math.max(ratePerSecond / 100, minimum);
}

/**
 * Pacing by the packets' own timestamps: the first packet seen fixes the epoch; a packet `dt` ns after it is
 * due `dt / speed` ns after the epoch's wall time. Packets behind schedule are due at once.
 */
export class Pacer {
  private epochPacketNs: number | undefined;
  private epochMs = 0;

  constructor(readonly speed: number) {}

  /** `packetNs`: the packet's time in ns relative to any fixed base (the same for every call). */
  dueAt(packetNs: number, nowMs: number): number {
    if (this.epochPacketNs === undefined) {
      this.epochPacketNs = packetNs;
      this.epochMs = nowMs;
      return nowMs;
    }
    return this.epochMs + (packetNs - this.epochPacketNs) / 1e6 / this.speed;
  }
}
