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
  /** Items done, when the run counts items (ingest counts bytes only). */
  readonly items?: number;
  /** Bytes done, when the run counts bytes (inspect counts blobs only). */
  readonly bytes?: number;
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
      const finished =
        (options.totalItems !== undefined && (p.items ?? 0) >= options.totalItems) ||
        (options.totalBytes !== undefined && (p.bytes ?? 0) >= options.totalBytes);
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

/**
 * "3/10 blobs, 1.0 MiB/4.0 MiB, 12 flows, 5 MB/s, ETA 1 s": what the run counts, of the totals when known,
 * the rate (bytes, else items) and the time left (from bytes when both are known, else from items).
 */
export function formatProgress(p: ProgressDone, totals: ProgressOptions, seconds: number): string {
  const elapsed = Math.max(seconds, 1e-3);
  const parts: string[] = [];
  if (p.items !== undefined)
    parts.push(
      `${totals.totalItems === undefined ? p.items : `${p.items}/${totals.totalItems}`} ${totals.unit}`,
    );
  if (p.bytes !== undefined)
    parts.push(
      totals.totalBytes === undefined
        ? formatBytes(p.bytes)
        : `${formatBytes(p.bytes)}/${formatBytes(totals.totalBytes)}`,
    );
  if (p.detail) parts.push(p.detail);
  let left: number | undefined;
  if (p.bytes !== undefined) {
    const rate = p.bytes / elapsed;
    parts.push(`${(rate / 1e6).toFixed(0)} MB/s`);
    if (totals.totalBytes !== undefined && rate > 0) left = (totals.totalBytes - p.bytes) / rate;
  } else if (p.items !== undefined) {
    const rate = p.items / elapsed;
    parts.push(`${rate.toFixed(0)} ${totals.unit}/s`);
    if (totals.totalItems !== undefined && rate > 0) left = (totals.totalItems - p.items) / rate;
  }
  if (left !== undefined) parts.push(`ETA ${Math.max(0, left).toFixed(0)} s`);
  return parts.join(", ");
}
