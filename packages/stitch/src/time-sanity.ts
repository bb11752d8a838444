/**
 * Time sanity (docs/tap-format.md 5.1): a record stamped far outside its blob's time range is a problem of
 * that record, not a new clock for the flow table. One `BlobTimeGuard` per blob: it passes in-range records
 * through untouched and returns out-of-range ones restamped with the blob's latest in-range time, counting
 * them, so that their bytes are kept and no other connection's timeouts, gap waits or output order move.
 */
import type { TapRecord } from "@cloudtap/tap-format";

export interface TimeSanityOptions {
  /** How far before the blob's start time a record may be stamped. Default 1 hour. */
  readonly maxBeforeStartNs?: bigint;
  /** How far after the blob's start time a record may be stamped. Default 24 hours. */
  readonly maxAfterStartNs?: bigint;
}

export const DEFAULT_MAX_BEFORE_START_NS = 3_600_000_000_000n;
export const DEFAULT_MAX_AFTER_START_NS = 86_400_000_000_000n;
/** 2^32 seconds (2106-02-07): the end of what every capture format can stamp (pcap's 32-bit seconds). */
export const END_OF_STAMPABLE_NS = 2n ** 32n * 1_000_000_000n;

export interface OutOfRangeRecord {
  readonly connId: string;
  readonly type: TapRecord["type"];
  readonly timestampNs: bigint;
}

export class BlobTimeGuard {
  private readonly lowNs: bigint;
  private readonly highNs: bigint;
  private latestNs: bigint;
  /** Out-of-range records of this blob. */
  count = 0;
  /** The first of them (for the problem's message). */
  first: OutOfRangeRecord | undefined;

  /**
   * `startNs`: the blob header's start time. `clockNs`: the consumer's clock (the newest record time it has
   * seen), the reference when the start time is itself beyond what can be stamped.
   */
  constructor(startNs: bigint, clockNs: bigint, options: TimeSanityOptions = {}) {
    const base = startNs < END_OF_STAMPABLE_NS ? startNs : clockNs;
    const before = options.maxBeforeStartNs ?? DEFAULT_MAX_BEFORE_START_NS;
    const after = options.maxAfterStartNs ?? DEFAULT_MAX_AFTER_START_NS;
    this.lowNs = base > before ? base - before : 0n;
    const high = base + after;
    this.highNs = high < END_OF_STAMPABLE_NS ? high : END_OF_STAMPABLE_NS - 1n;
    this.latestNs = base;
  }

  /** The record as it is to be used: itself when in range, else a copy with the blob's latest good time. */
  check(record: TapRecord): TapRecord {
    const ts = record.timestampNs;
    if (ts >= this.lowNs && ts <= this.highNs) {
      if (ts > this.latestNs) this.latestNs = ts;
      return record;
    }
    this.count++;
    this.first ??= { connId: record.connId, type: record.type, timestampNs: ts };
    return { ...record, timestampNs: this.latestNs };
  }

  /** A one-line description of what was restamped, or undefined when nothing was. */
  describe(): string | undefined {
    const f = this.first;
    if (!f) return undefined;
    return (
      `${this.count} record(s) stamped outside the blob's time range were used at the blob's time ` +
      `(first: ${f.type} of connection ${f.connId}, stamped ${f.timestampNs} ns)`
    );
  }
}
