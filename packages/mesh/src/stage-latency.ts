/**
 * Where a record's time goes on its way through the mesh (issue 15's lag, taken apart): each stage counts
 * how long its items spent in it, as a histogram made of plain counters (`mesh_stage_ms{stage,le}`: items
 * whose time was at most `le` ms and more than the bound before; `mesh_stage_ms_count{stage}`,
 * `mesh_stage_ms_sum{stage}`), so `cloudtap status --json` and the metrics endpoint carry it and the
 * instances of one service add up. `stageQuantiles` reads quantiles back from a snapshot (linear within a
 * bucket, as Prometheus's `histogram_quantile`).
 *
 * The stages, in the order a record meets them (each item weighted by the records or frames it carries):
 * - `fetch_pickup`: the blob's landing in the store (its modification time) to a fetcher taking it from
 *   the work queue (the poll, the listing, the queue).
 * - `fetch_publish`: taken to every batch of it acknowledged by JetStream (read, decode, cut, publish).
 * - `chunk_delivery`: a batch's publish (the fetcher's clock, in `Ctap-Published-Ms`) to the stitcher's
 *   consume loop reading it.
 * - `stitch_hold`: a record's consumption to its frames leaving for the egress (the time order, the
 *   lateness); per frame, the record's arrival taken as the first message whose newest record reached the
 *   frame's time (exact for input in time order, an under-estimate for late records).
 * - `mirror_roundtrip`: a batch sent to the egress until it acknowledged it (gRPC both ways, the egress's
 *   hold and write).
 * - `egress_hold`: a batch received by the egress until its last frame left the time merge.
 * - `egress_write`: released by the merge until the sinks accepted it (and, with a journal, the commit).
 *
 * The clocks of different processes are compared in `chunk_delivery` (and `fetch_pickup` compares the
 * store's clock): meaningful on one machine or with synchronized clocks.
 */
import { FRAME_HEADER, FrameBatchEvent } from "@cloudtap/mirror";
import type { CounterRegistry, Gauge } from "@cloudtap/service-kit";

export const MeshStage = {
  FetchPickup: "fetch_pickup",
  FetchPublish: "fetch_publish",
  ChunkDelivery: "chunk_delivery",
  StitchHold: "stitch_hold",
  MirrorRoundtrip: "mirror_roundtrip",
  EgressHold: "egress_hold",
  EgressWrite: "egress_write",
} as const;
export type MeshStage = (typeof MeshStage)[keyof typeof MeshStage];

/** The fetcher's wall clock (ms) at a chunk batch's publish: the stitcher's `chunk_delivery` starts there. */
export const PUBLISHED_MS_HEADER = "Ctap-Published-Ms";

/** Upper bounds (ms) of the buckets; the last bucket is everything above. */
export const STAGE_BOUNDS_MS: readonly number[] = [
  1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 500, 650, 800, 1000, 1250, 1500, 1750, 2000, 2500,
  3000, 4000, 5000, 7500, 10_000, 20_000, 60_000,
];

const NAME = "mesh_stage_ms";

export class StageLatency {
  private readonly buckets: Gauge[];
  private readonly count: Gauge;
  private readonly sum: Gauge;

  constructor(counters: CounterRegistry, stage: MeshStage) {
    // Gauges that only grow: counters refuse fractional or zero-weight adds no better, and gauges let a
    // registry view (runCounters) carry them unchanged.
    this.buckets = [...STAGE_BOUNDS_MS.map(String), "inf"].map((le) => counters.gauge(NAME, { stage, le }));
    this.count = counters.gauge(`${NAME}_count`, { stage });
    this.sum = counters.gauge(`${NAME}_sum`, { stage });
  }

  /** One item (or `weight` items) that spent `ms` in the stage. */
  observe(ms: number, weight = 1): void {
    if (!(weight > 0)) return;
    const v = ms > 0 ? ms : 0;
    let i = 0;
    while (i < STAGE_BOUNDS_MS.length && v > STAGE_BOUNDS_MS[i]!) i++;
    this.buckets[i]!.add(weight);
    this.count.add(weight);
    this.sum.add(v * weight);
  }
}

export interface StageFigures {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const SERIES_RE = /^mesh_stage_ms\{le=([^,]+),stage=([a-z_]+)\}$/;

/**
 * p50, p99 and the mean of every stage in one or more status snapshots (several instances add up).
 * A quantile in the last bucket (above the largest bound) is given as that bound.
 */
export function stageQuantiles(
  snapshots: readonly Readonly<Record<string, number>>[],
): Record<string, StageFigures> {
  const perStage = new Map<string, { counts: number[]; sum: number }>();
  const of = (stage: string) => {
    let s = perStage.get(stage);
    if (!s) {
      s = { counts: new Array<number>(STAGE_BOUNDS_MS.length + 1).fill(0), sum: 0 };
      perStage.set(stage, s);
    }
    return s;
  };
  for (const snap of snapshots) {
    for (const [name, value] of Object.entries(snap)) {
      const m = SERIES_RE.exec(name);
      if (m) {
        const i = m[1] === "inf" ? STAGE_BOUNDS_MS.length : STAGE_BOUNDS_MS.indexOf(Number(m[1]));
        if (i >= 0) of(m[2]!).counts[i]! += value;
        continue;
      }
      const sum = /^mesh_stage_ms_sum\{stage=([a-z_]+)\}$/.exec(name);
      if (sum) of(sum[1]!).sum += value;
    }
  }
  const out: Record<string, StageFigures> = {};
  for (const [stage, { counts, sum }] of perStage) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) continue;
    const q = (p: number) => {
      const rank = p * total;
      let below = 0;
      for (let i = 0; i < counts.length; i++) {
        const n = counts[i]!;
        if (n > 0 && below + n >= rank) {
          const lo = i === 0 ? 0 : STAGE_BOUNDS_MS[i - 1]!;
          if (i === STAGE_BOUNDS_MS.length) return lo;
          const hi = STAGE_BOUNDS_MS[i]!;
          return lo + ((hi - lo) * (rank - below)) / n;
        }
        below += n;
      }
      return STAGE_BOUNDS_MS[STAGE_BOUNDS_MS.length - 1]!;
    };
    out[stage] = { count: total, meanMs: sum / total, p50Ms: q(0.5), p99Ms: q(0.99) };
  }
  return out;
}

/**
 * When each record time was first reached by a shard's input (for `stitch_hold`): entries of the newest
 * record time (ms) and the wall clock (ms) of the message that brought it, in increasing record time.
 */
export class ArrivalClock {
  private readonly ts: number[] = [];
  private readonly at: number[] = [];

  /** A message consumed at `atMs` whose newest record is stamped `newestMs`. */
  note(newestMs: number, atMs: number): void {
    const n = this.ts.length;
    if (n > 0 && newestMs <= this.ts[n - 1]!) return;
    this.ts.push(newestMs);
    this.at.push(atMs);
  }

  /** The wall clock at which a record stamped `tsMs` had arrived (undefined: none known yet). */
  arrivalOf(tsMs: number): number | undefined {
    const ts = this.ts;
    let lo = 0;
    let hi = ts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ts[mid]! < tsMs) lo = mid + 1;
      else hi = mid;
    }
    return lo < ts.length ? this.at[lo] : undefined;
  }

  /** Forgets what came before `tsMs` (frames up to there are out), keeping the entry that covers it. */
  forgetBefore(tsMs: number): void {
    let n = 0;
    while (n + 1 < this.ts.length && this.ts[n]! < tsMs) n++;
    if (n > 0) {
      this.ts.splice(0, n);
      this.at.splice(0, n);
    }
  }
}

/** A frame batch's frame timestamps in ms (record time), each passed to `fn` (the layout of `@cloudtap/mirror`). */
export function forEachFrameMs(batch: Uint8Array, fn: (tsMs: number) => void): void {
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 0;
  while (at + 5 <= batch.length) {
    const type = batch[at]!;
    if (type === FrameBatchEvent.Frame) {
      const lo = view.getUint32(at + 5, true);
      const hi = view.getInt32(at + 9, true);
      fn(hi * 4294.967296 + lo / 1e6);
      at += FRAME_HEADER + view.getUint32(at + 17, true);
    } else if (type === FrameBatchEvent.FlowStart) at += 9 + view.getUint32(at + 5, true);
    else if (type === FrameBatchEvent.FlowEnd) at += 5;
    else if (type === FrameBatchEvent.KeyLog) at += 5 + view.getUint32(at + 1, true);
    else return;
  }
}
