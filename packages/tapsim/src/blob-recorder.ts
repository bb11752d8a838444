/**
 * The tapper's output side: collects the records of all connections into CTAP blobs and writes them to the
 * data store.
 *
 * Order. A tapper sees traffic in time order and writes it that way; here connections run concurrently, each on
 * its own virtual clock, so records arrive out of time order. Each record waits in a reorder buffer until the
 * watermark (the oldest clock of a live connection, or the planned start of the next connection) has passed
 * it: nothing older can arrive after that. Released records go, in time order, to the tapper's current blob,
 * which rotates like a real tapper's: when it holds `blobSize` bytes or when its age reaches `blobAgeNs`. So
 * a clean run's blobs, listed in key order per tapper, hold every stream in offset order.
 *
 * Bounds. When the reorder buffer holds more than `maxPendingBytes`, its oldest records are released early
 * (counted in `forcedReleases`; a record that arrives older than the blob it lands in is then out of order,
 * which the format allows), and `waitForCapacity()` holds the caller back while buffered and queued bytes
 * exceed the cap.
 *
 * Faults (for the consumers' tests): `duplicateBlobs` writes some blobs a second time under the next sequence
 * number; `shuffle` moves records of a blob into the blob before it (so a later offset of a stream lands in an
 * earlier blob) and swaps a few neighbours inside blobs; `truncateLast` cuts the last blob written in the
 * middle of its last record; a `gap` rule drops one data record.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import {
  createCtapWriter,
  type Direction,
  dataBlobKey,
  directionName,
  MemorySink,
  type TapRecord,
} from "@cloudtap/tap-format";
import type { TapClockRegistry } from "./connection-runner.js";
import type { ConnectionTap } from "./connection-tap.js";
import type { Prng } from "./prng.js";

export interface GapRule {
  readonly connId: string;
  readonly direction: Direction;
  /** The first data record of the stream that starts at or after this offset is dropped. */
  readonly minOffset: number;
}

export interface AppliedGap {
  readonly connId: string;
  readonly direction: "c2s" | "s2c";
  readonly offset: number;
  readonly length: number;
}

export interface BlobRecorderFaults {
  readonly duplicateBlobs: boolean;
  readonly shuffle: boolean;
  readonly truncateLast: boolean;
  readonly gap?: GapRule;
}

export interface BlobRecorderOptions {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly blobSize: number;
  readonly blobAgeNs: bigint;
  /** The run's start: no record is older. */
  readonly epochNs: bigint;
  readonly compression: "none" | "gzip";
  readonly faults: BlobRecorderFaults;
  /** Draws the fault choices. */
  readonly prng: Prng;
  /** Cap of the reorder buffer plus the blobs queued for writing. */
  readonly maxPendingBytes?: number;
}

export interface WrittenBlob {
  readonly key: string;
  readonly tapperId: string;
  readonly sequence: bigint;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly records: number;
  readonly bytes: number;
  /** Set on the second copy written by the duplicateBlobs fault. */
  readonly duplicateOf?: string;
}

export interface AppliedTruncation {
  readonly key: string;
  readonly originalBytes: number;
  readonly keptBytes: number;
  /** The record cut in half (absent for compressed blobs, whose frames are not visible in the bytes). */
  readonly cutRecord?: {
    readonly type: TapRecord["type"];
    readonly connId: string;
    readonly direction?: "c2s" | "s2c";
    readonly offset?: number;
    readonly length?: number;
  };
}

export interface BlobRecorderReport {
  /** In the order they were written. */
  readonly blobs: readonly WrittenBlob[];
  readonly gap?: AppliedGap;
  readonly shuffle?: { readonly movedRecords: number; readonly swappedPairs: number };
  readonly truncation?: AppliedTruncation;
  /** Records released from the reorder buffer before the watermark passed them (buffer full). */
  readonly forcedReleases: number;
  /** Latest end time over all blobs. */
  readonly lastEndNs: bigint;
}

export const DEFAULT_MAX_PENDING_BYTES = 128 * 1024 * 1024;
/** Fraction of blobs the duplicateBlobs fault copies (the first blob is always copied). */
const DUPLICATE_SHARE = 0.15;
/** Fraction of eligible records the shuffle fault moves to the previous blob, and of neighbours it swaps. */
const SHUFFLE_MOVE_SHARE = 0.1;
const SHUFFLE_SWAP_SHARE = 0.05;

/** Frame header plus the fixed body of each record type, as the v1 writer encodes them (an estimate for conn-open). */
function recordSize(r: TapRecord): number {
  switch (r.type) {
    case "data":
    case "datagram":
      return 16 + 40 + r.payload.length;
    case "conn-open":
      return 16 + 82 + 24 * Object.keys(r.attributes).length + 40;
    case "conn-close":
      return 16 + 48;
  }
}

function recordEndNs(r: TapRecord): bigint {
  return r.type === "data" ? r.timestampNs + BigInt(r.spanNs) : r.timestampNs;
}

const FOREVER = 2n ** 64n;

function comparePending(a: PendingRecord, b: PendingRecord): number {
  const ta = a.record.timestampNs;
  const tb = b.record.timestampNs;
  return ta < tb ? -1 : ta > tb ? 1 : a.arrival - b.arrival;
}

function streamKey(r: TapRecord): string | undefined {
  return r.type === "data" ? `${r.connId}/${r.direction}` : undefined;
}

interface PendingRecord {
  readonly tapperId: string;
  readonly record: TapRecord;
  /** Arrival order: breaks ties between records of equal time. */
  readonly arrival: number;
  readonly size: number;
}

interface OpenBlob {
  readonly tapperId: string;
  readonly startNs: bigint;
  readonly records: TapRecord[];
  bytes: number;
}

interface SealedBlob {
  readonly tapperId: string;
  readonly sequence: bigint;
  records: TapRecord[];
  bytes: number;
}

interface EncodedBlob {
  readonly info: WrittenBlob;
  readonly bytes: Uint8Array;
  /** [start, end) of each record's frame in `bytes` (uncompressed blobs only). */
  readonly frames: readonly (readonly [number, number])[];
  readonly records: readonly TapRecord[];
}

function firstStartNs(records: readonly TapRecord[]): bigint {
  let min = records[0]!.timestampNs;
  for (const r of records) if (r.timestampNs < min) min = r.timestampNs;
  return min;
}

function sortByTime(records: TapRecord[]): void {
  // Array.prototype.sort is stable, so records of equal time keep their order.
  records.sort((a, b) => (a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0));
}

export class BlobRecorder implements TapClockRegistry {
  /** The reorder buffer: per tapper and connection, records in arrival order (which is time order). */
  private readonly pending = new Map<string, PendingRecord[]>();
  private readonly current = new Map<string, OpenBlob>();
  private readonly taps = new Set<ConnectionTap>();
  private readonly sequences = new Map<string, bigint>();
  private readonly held = new Map<string, SealedBlob>();
  private readonly written: WrittenBlob[] = [];
  private readonly maxPendingBytes: number;
  private pendingStartNs: bigint;
  private released = -1n;
  private arrivals = 0;
  private pendingBytes = 0;
  private queuedBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  private capacityWaiters: (() => void)[] = [];
  private gap: AppliedGap | undefined;
  private moved = 0;
  private swapped = 0;
  private forcedReleases = 0;
  private duplicates = 0;
  private lastEncoded: EncodedBlob | undefined;
  private lastEndNs = 0n;
  private finished = false;

  constructor(private readonly options: BlobRecorderOptions) {
    if (options.blobAgeNs <= 0n) throw new RangeError("blobAgeNs must be positive");
    if (!(options.blobSize > 0)) throw new RangeError("blobSize must be positive");
    this.maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.pendingStartNs = options.epochNs;
  }

  register(tap: ConnectionTap): void {
    this.taps.add(tap);
  }

  unregister(tap: ConnectionTap): void {
    this.taps.delete(tap);
    this.release();
  }

  /** The planned start of the next connection not yet registered: no later record can be older. */
  setPendingStart(ns: bigint): void {
    this.pendingStartNs = ns;
    this.release();
  }

  record(tapperId: string, record: TapRecord): void {
    if (this.finished) throw new Error("record after finish");
    const gapRule = this.options.faults.gap;
    if (
      gapRule &&
      !this.gap &&
      record.type === "data" &&
      record.connId === gapRule.connId &&
      record.direction === gapRule.direction &&
      record.offset >= gapRule.minOffset
    ) {
      this.gap = {
        connId: record.connId,
        direction: directionName(record.direction),
        offset: record.offset,
        length: record.payload.length,
      };
      return;
    }
    const key = `${tapperId}/${record.connId}`;
    let queue = this.pending.get(key);
    if (!queue) {
      queue = [];
      this.pending.set(key, queue);
    }
    const size = recordSize(record);
    queue.push({ tapperId, record, arrival: this.arrivals++, size });
    this.pendingBytes += size;
    if (this.pendingBytes > this.maxPendingBytes) this.forceRelease();
    this.release();
  }

  /** Resolves when buffered and queued bytes are below the cap again; rejects if a write failed. */
  async waitForCapacity(): Promise<void> {
    while (
      this.failure === undefined &&
      this.pendingBytes + this.queuedBytes > this.maxPendingBytes &&
      this.queuedBytes > 0
    ) {
      await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  private watermark(): bigint {
    let w = this.pendingStartNs;
    for (const tap of this.taps) if (tap.clockNs < w) w = tap.clockNs;
    return w;
  }

  /** Releases, in time order, every buffered record older than the watermark; closes blobs that aged out. */
  private release(): void {
    const w = this.finished ? FOREVER : this.watermark();
    // Every record still to come is at least as new as the watermark, so nothing new is releasable before the
    // watermark moves.
    if (w <= this.released) return;
    this.released = w;
    const ready: PendingRecord[] = [];
    for (const [key, queue] of this.pending) {
      let n = 0;
      while (n < queue.length && queue[n]!.record.timestampNs < w) n++;
      if (n === 0) continue;
      ready.push(...queue.splice(0, n));
      if (queue.length === 0) this.pending.delete(key);
    }
    this.appendInOrder(ready);
    for (const blob of [...this.current.values()]) {
      if (w >= blob.startNs + this.options.blobAgeNs) this.closeBlob(blob);
    }
  }

  /** Releases the oldest half of the buffer without waiting for the watermark (the buffer is full). */
  private forceRelease(): void {
    const all: PendingRecord[] = [];
    for (const queue of this.pending.values()) all.push(...queue);
    all.sort(comparePending);
    const take = new Set(all.slice(0, Math.ceil(all.length / 2)));
    for (const [key, queue] of this.pending) {
      const keep = queue.filter((p) => !take.has(p));
      if (keep.length === 0) this.pending.delete(key);
      else this.pending.set(key, keep);
    }
    this.forcedReleases += take.size;
    this.appendInOrder([...take]);
  }

  private appendInOrder(ready: PendingRecord[]): void {
    ready.sort(comparePending);
    for (const p of ready) {
      this.pendingBytes -= p.size;
      let blob = this.current.get(p.tapperId);
      if (blob && p.record.timestampNs >= blob.startNs + this.options.blobAgeNs) {
        this.closeBlob(blob);
        blob = undefined;
      }
      if (!blob) {
        blob = { tapperId: p.tapperId, startNs: p.record.timestampNs, records: [], bytes: 0 };
        this.current.set(p.tapperId, blob);
      }
      blob.records.push(p.record);
      blob.bytes += p.size;
      if (blob.bytes >= this.options.blobSize) this.closeBlob(blob);
    }
  }

  private nextSequence(tapperId: string): bigint {
    const s = this.sequences.get(tapperId) ?? 0n;
    this.sequences.set(tapperId, s + 1n);
    return s;
  }

  private closeBlob(blob: OpenBlob): void {
    this.current.delete(blob.tapperId);
    const sealed: SealedBlob = {
      tapperId: blob.tapperId,
      sequence: this.nextSequence(blob.tapperId),
      records: blob.records,
      bytes: blob.bytes,
    };
    this.queuedBytes += sealed.bytes;
    if (!this.options.faults.shuffle) {
      this.enqueue(sealed);
      return;
    }
    const previous = this.held.get(blob.tapperId);
    this.held.set(blob.tapperId, sealed);
    if (previous) {
      this.shufflePair(previous, sealed);
      this.enqueue(previous);
    }
  }

  /**
   * Moves some data records from the blob that sorts later (by key: start time, then sequence) into the one
   * that sorts earlier. Only records that have an earlier record of their stream in the later blob move, so
   * each move puts a higher offset into the earlier blob than one left behind in the later blob.
   */
  private shufflePair(a: SealedBlob, b: SealedBlob): void {
    const startA = firstStartNs(a.records);
    const startB = firstStartNs(b.records);
    const aFirst = startA < startB || (startA === startB && a.sequence < b.sequence);
    const [early, late] = aFirst ? [a, b] : [b, a];
    const seen = new Set<string>();
    const eligible: number[] = [];
    late.records.forEach((r, i) => {
      const k = streamKey(r);
      if (k === undefined) return;
      if (seen.has(k)) eligible.push(i);
      else seen.add(k);
    });
    if (eligible.length === 0) return;
    const count = Math.max(1, Math.round(eligible.length * SHUFFLE_MOVE_SHARE));
    const chosen = new Set(this.options.prng.shuffled(eligible).slice(0, count));
    const moving = late.records.filter((_, i) => chosen.has(i));
    late.records = late.records.filter((_, i) => !chosen.has(i));
    early.records.push(...moving);
    sortByTime(early.records);
    const movedBytes = moving.reduce((n, r) => n + recordSize(r), 0);
    late.bytes -= movedBytes;
    early.bytes += movedBytes;
    this.moved += moving.length;
  }

  /** Swaps a few data records with the previous record of the same stream inside one blob. */
  private swapNeighbours(records: TapRecord[]): void {
    const last = new Map<string, number>();
    for (let i = 0; i < records.length; i++) {
      const k = streamKey(records[i]!);
      if (k === undefined) continue;
      const j = last.get(k);
      if (j !== undefined && this.options.prng.chance(SHUFFLE_SWAP_SHARE)) {
        const t = records[i]!;
        records[i] = records[j]!;
        records[j] = t;
        this.swapped++;
        last.set(k, i);
        continue;
      }
      last.set(k, i);
    }
  }

  private enqueue(blob: SealedBlob): void {
    if (blob.records.length === 0) {
      this.queuedBytes -= blob.bytes;
      return;
    }
    if (this.options.faults.shuffle) this.swapNeighbours(blob.records);
    const copy =
      this.options.faults.duplicateBlobs &&
      (this.duplicates === 0 || this.options.prng.chance(DUPLICATE_SHARE))
        ? this.nextSequence(blob.tapperId)
        : undefined;
    if (copy !== undefined) this.duplicates++;
    const bytes = blob.bytes;
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return;
      try {
        const original = await this.encode(blob.tapperId, blob.sequence, blob.records);
        await this.store(original);
        if (copy !== undefined) {
          await this.store(await this.encode(blob.tapperId, copy, blob.records, original.info.key));
        }
      } catch (err) {
        this.failure = err;
      } finally {
        this.queuedBytes -= bytes;
        const waiters = this.capacityWaiters;
        this.capacityWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  private async encode(
    tapperId: string,
    sequence: bigint,
    records: readonly TapRecord[],
    duplicateOf?: string,
  ): Promise<EncodedBlob> {
    const startNs = firstStartNs(records);
    let endNs = startNs;
    for (const r of records) {
      const e = recordEndNs(r);
      if (e > endNs) endNs = e;
    }
    const sink = new MemorySink();
    const compression = this.options.compression;
    const writer = createCtapWriter(sink, { tapperId, sequence, startNs, compression });
    const frames: [number, number][] = [];
    let headerBytes = -1;
    let before = 0;
    for (const r of records) {
      await writer.write(r);
      if (headerBytes < 0) headerBytes = writer.bytesWritten - writer.frameBytes;
      frames.push([headerBytes + before, headerBytes + writer.frameBytes]);
      before = writer.frameBytes;
    }
    await writer.finish(endNs);
    const bytes = sink.bytes();
    const key = dataBlobKey(this.options.prefix, tapperId, startNs, sequence);
    return {
      info: {
        key,
        tapperId,
        sequence,
        startNs,
        endNs,
        records: records.length,
        bytes: bytes.length,
        ...(duplicateOf !== undefined ? { duplicateOf } : {}),
      },
      bytes,
      frames: compression === "none" ? frames : [],
      records,
    };
  }

  private async store(blob: EncodedBlob): Promise<void> {
    if (blob.info.endNs > this.lastEndNs) this.lastEndNs = blob.info.endNs;
    let toWrite: EncodedBlob | undefined = blob;
    if (this.options.faults.truncateLast) {
      // Hold the newest blob back: whichever is held at the end is the last one and gets cut.
      toWrite = this.lastEncoded;
      this.lastEncoded = blob;
    }
    if (toWrite) {
      await this.options.store.write(toWrite.info.key, toWrite.bytes);
      this.written.push(toWrite.info);
    }
  }

  private async writeTruncated(blob: EncodedBlob): Promise<AppliedTruncation> {
    const lastFrame = blob.frames[blob.frames.length - 1];
    const lastRecord = blob.records[blob.records.length - 1]!;
    let keptBytes: number;
    let cutRecord: AppliedTruncation["cutRecord"];
    if (lastFrame) {
      const [start, end] = lastFrame;
      keptBytes = start + Math.max(1, Math.floor((end - start) / 2));
      cutRecord = {
        type: lastRecord.type,
        connId: lastRecord.connId,
        ...(lastRecord.type === "data"
          ? {
              direction: directionName(lastRecord.direction),
              offset: lastRecord.offset,
              length: lastRecord.payload.length,
            }
          : {}),
      };
    } else {
      keptBytes = Math.floor(blob.bytes.length / 2);
    }
    await this.options.store.write(blob.info.key, blob.bytes.subarray(0, keptBytes));
    this.written.push({ ...blob.info, bytes: keptBytes });
    return {
      key: blob.info.key,
      originalBytes: blob.bytes.length,
      keptBytes,
      ...(cutRecord ? { cutRecord } : {}),
    };
  }

  /** Releases and closes everything, writes everything still queued or held, and reports what was written. */
  async finish(): Promise<BlobRecorderReport> {
    if (this.finished) throw new Error("finish called twice");
    this.finished = true;
    this.release();
    for (const blob of [...this.current.values()]) this.closeBlob(blob);
    for (const [tapperId, blob] of this.held) {
      this.held.delete(tapperId);
      this.enqueue(blob);
    }
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
    let truncation: AppliedTruncation | undefined;
    if (this.lastEncoded) truncation = await this.writeTruncated(this.lastEncoded);
    return {
      blobs: this.written,
      ...(this.gap ? { gap: this.gap } : {}),
      ...(this.options.faults.shuffle
        ? { shuffle: { movedRecords: this.moved, swappedPairs: this.swapped } }
        : {}),
      ...(truncation ? { truncation } : {}),
      forcedReleases: this.forcedReleases,
      lastEndNs: this.lastEndNs,
    };
  }
}
