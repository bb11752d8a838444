/**
 * Continuous listing of a store that keeps filling (`cloudtap stitch --follow`): every `pollMs` the data
 * blobs (and key logs) are listed again with `listBlobs`/`listKeyLogs`, from `latenessNs` before the newest
 * start time handed out (tappers write in parallel, so a blob may land after blobs that started later), and
 * each blob not handed out before is yielded once, in start-time order.
 *
 * The lateness window also orders what is handed out: a listed blob is held until a blob starting at least
 * `latenessNs` later has been listed (nothing older can still land), or until it has waited `latenessNs` of
 * clock time (an idle store: the tail of what was written goes out). Held blobs then leave in start-time
 * order (`sortBlobsByTime`), so a connection's blobs reach the stitcher in order even when they landed
 * shuffled within the window. A blob that lands later than the window after newer ones is still handed out
 * (late), as long as its start is within `latenessNs` of the cursor; an older one is not listed any more.
 *
 * Aborting the signal ends the iteration (after the current poll), so a consumer's loop ends normally and
 * can flush. Time is an input: `now` (milliseconds) defaults to `Date.now`, the sleep to a timer.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import { parseBlobKey } from "@cloudtap/tap-format";
import { listBlobs, listKeyLogs, sortBlobsByTime } from "./blob-listing.js";
import type { BlobSource } from "./blob-source.js";

export type ListedBlob = BlobSource & { readonly size: number };

export interface FollowOptions {
  readonly prefix?: string;
  /** Also follow the key logs of this store (kind "keys"), interleaved by time. */
  readonly keyStore?: ObjectStore;
  /** Default 5 s. */
  readonly pollMs?: number;
  /** Default 2 min. */
  readonly latenessNs?: bigint;
  /** Where to start when nothing was handed out yet; default: everything in the store. */
  readonly sinceNs?: bigint;
  /** Newest start time already handed out (a resumed run): listing starts `latenessNs` before it. */
  readonly cursorNs?: bigint;
  /** Keys already handed out (a resumed run): never yielded again. */
  readonly seen?: Iterable<string>;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Called after each poll with what it found, and awaited before the released blobs are yielded: a
   * consumer with nothing left to do may checkpoint here.
   */
  readonly onPoll?: (poll: FollowPoll) => void | Promise<void>;
}

export interface FollowPoll {
  readonly listed: number;
  readonly fresh: number;
  readonly held: number;
  readonly released: number;
}

export const DEFAULT_FOLLOW_POLL_MS = 5_000;
export const DEFAULT_FOLLOW_LATENESS_NS = 120_000_000_000n;

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

const startOf = (key: string): bigint | undefined => parseBlobKey(key)?.startNs;

export async function* followBlobs(
  store: ObjectStore,
  options: FollowOptions = {},
): AsyncGenerator<ListedBlob> {
  const pollMs = options.pollMs ?? DEFAULT_FOLLOW_POLL_MS;
  const latenessNs = options.latenessNs ?? DEFAULT_FOLLOW_LATENESS_NS;
  const latenessMs = Number(latenessNs / 1_000_000n);
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const signal = options.signal;
  const seen = new Set(options.seen ?? []);
  const held = new Map<string, { blob: ListedBlob; listedAtMs: number }>();
  let cursorNs = options.cursorNs;
  while (!signal?.aborted) {
    const sinceNs = cursorNs === undefined ? options.sinceNs : cursorNs - latenessNs;
    const window = {
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(sinceNs === undefined ? {} : { sinceNs }),
      lookbackNs: 0n,
      ...(signal ? { signal } : {}),
    };
    let listed = 0;
    let fresh = 0;
    let newestNs: bigint | undefined;
    const take = (blob: ListedBlob) => {
      listed++;
      const start = startOf(blob.key);
      if (start !== undefined && (newestNs === undefined || start > newestNs)) newestNs = start;
      if (seen.has(blob.key) || held.has(blob.key)) return;
      fresh++;
      held.set(blob.key, { blob, listedAtMs: now() });
    };
    try {
      for await (const blob of listBlobs(store, window)) take(blob);
      if (options.keyStore) for await (const blob of listKeyLogs(options.keyStore, window)) take(blob);
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    // Held blobs are released up to the newest start that nothing older can precede any more.
    const at = now();
    let releaseUpTo: bigint | undefined;
    for (const { blob, listedAtMs } of held.values()) {
      const start = startOf(blob.key);
      const settled =
        start === undefined ||
        (newestNs !== undefined && start + latenessNs <= newestNs) ||
        at - listedAtMs >= latenessMs;
      if (!settled) continue;
      const upTo = start ?? -1n;
      if (releaseUpTo === undefined || upTo > releaseUpTo) releaseUpTo = upTo;
    }
    const released =
      releaseUpTo === undefined
        ? []
        : sortBlobsByTime(
            [...held.values()].map((h) => h.blob).filter((b) => (startOf(b.key) ?? -1n) <= releaseUpTo!),
          );
    for (const blob of released) {
      held.delete(blob.key);
      seen.add(blob.key);
      const start = startOf(blob.key);
      if (start !== undefined && (cursorNs === undefined || start > cursorNs)) cursorNs = start;
    }
    await options.onPoll?.({ listed, fresh, held: held.size, released: released.length });
    for (const blob of released) yield blob;
    // What is far behind the cursor is never listed again: forget it.
    if (cursorNs !== undefined) {
      const floor = cursorNs - latenessNs;
      for (const key of seen) {
        const start = startOf(key);
        if (start !== undefined && start < floor) seen.delete(key);
      }
    }
    await sleep(pollMs, signal);
  }
}
