/**
 * The progress line of `stitch`, `ingest` and `inspect` on stderr: items (blobs, packets) and bytes done of
 * the total listed, the rate and the time left, redrawn in place at most 5 times a second. Nothing at all
 * when stderr is not a terminal or with `--quiet`, so piped and logged output stays clean. `done()` clears
 * the line (call it before the summary, also when the run failed).
 */
import { formatBytes } from "./units.js";

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** What the items are ("blobs", "packets"). */
  readonly unit: string;
  /** Totals when known (a listed window); unknown totals show no time left. */
  readonly totalItems?: number;
  readonly totalBytes?: number;
  readonly quiet?: boolean;
  /** Milliseconds clock; default Date.now. */
  readonly now?: () => number;
}

export interface ProgressDone {
  readonly items: number;
  readonly bytes: number;
  /** Extra words after the counts ("12 flows"). */
  readonly detail?: string;
}

export interface ProgressLine {
  /** Whether anything is drawn (a terminal, not quiet). */
  readonly active: boolean;
  update(done: ProgressDone): void;
  /** Clears the line. Idempotent. */
  done(): void;
}

const REDRAW_MS = 200;

export function createProgressLine(stream: ProgressStream, options: ProgressOptions): ProgressLine {
  const active = stream.isTTY === true && options.quiet !== true;
  const now = options.now ?? Date.now;
  const started = now();
  let lastDraw = -Infinity;
  let drawn = false;
  return {
    active,
    update(p) {
      if (!active) return;
      const at = now();
      const finished = options.totalItems !== undefined && p.items >= options.totalItems;
      if (at - lastDraw < REDRAW_MS && !finished) return;
      lastDraw = at;
      drawn = true;
      stream.write(`\r\x1b[K${formatProgress(p, options, (at - started) / 1000)}`);
    },
    done() {
      if (drawn) stream.write("\r\x1b[K");
      drawn = false;
    },
  };
}

/** "3/10 blobs, 1.0 MiB/4.0 MiB, 12 flows, 5 MB/s, ETA 1 s" (the totals and ETA only when known). */
export function formatProgress(p: ProgressDone, totals: ProgressOptions, seconds: number): string {
  const rate = p.bytes / Math.max(seconds, 1e-3);
  const items = totals.totalItems === undefined ? `${p.items}` : `${p.items}/${totals.totalItems}`;
  const bytes =
    totals.totalBytes === undefined
      ? formatBytes(p.bytes)
      : `${formatBytes(p.bytes)}/${formatBytes(totals.totalBytes)}`;
  const eta =
    totals.totalBytes !== undefined && rate > 0
      ? `, ETA ${Math.max(0, (totals.totalBytes - p.bytes) / rate).toFixed(0)} s`
      : "";
  return `${items} ${totals.unit}, ${bytes}, ${p.detail ? `${p.detail}, ` : ""}${(rate / 1e6).toFixed(0)} MB/s${eta}`;
}
