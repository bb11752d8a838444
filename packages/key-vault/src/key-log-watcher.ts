/**
 * Watches a key store for key logs (`<prefix>/keys/**.keylog[.gz]`): each `poll()` lists from a little
 * before the cursor and hands every key log it has not read yet to `onKeyLog`, in key order.
 *
 * Keys sort by time, but a key log may land late, under a name that sorts before the cursor (another
 * tapper, or a slow upload). So a poll re-lists from the hour of `cursor time - lateness` and skips what it
 * read already (same key, size and modification time); an object rewritten since is read again. The cursor
 * is saved after each poll; after a restart the lateness window is read again, which is harmless since the
 * broker merges lines. Objects that cannot be read count as problems and are retried on the next poll.
 *
 * Lifecycle: `poll()` calls never overlap (the caller awaits each one); `run(pollMs, signal)` polls until the
 * signal aborts. Nothing here logs: the caller gets key names and counts through `onProblem` and `stats`.
 */
import { inflateKeyLog, isKeyLogKey } from "@cloudtap/fetch";
import type { ObjectStore } from "@cloudtap/object-store";
import { keyLogKey, keysPrefix, parseBlobKey } from "@cloudtap/tap-format";
import type { CursorStore } from "./cursor-store.js";

export interface KeyLogWatcherOptions {
  readonly store: ObjectStore;
  /** Store prefix above `keys/`. Default "". */
  readonly prefix?: string;
  readonly cursor: CursorStore;
  /** How far before the cursor's time to re-list. Default 1 hour. */
  readonly latenessNs?: bigint;
  /** Cap on what one key log may inflate to. Default that of @cloudtap/fetch. */
  readonly maxKeyLogBytes?: number;
  /** Receives each key log's text; a rejection counts as a problem and the key log is read again later. */
  readonly onKeyLog: (key: string, text: string) => Promise<void> | void;
  /** A key log that could not be read or handled (the message names the object, never its content). */
  readonly onProblem?: (key: string, err: unknown) => void;
  /** Cap on the remembered keys of the lateness window. Default 100000 (oldest forgotten first). */
  readonly maxRemembered?: number;
}

export interface KeyLogWatcherStats {
  polls: number;
  keyLogsRead: number;
  keyLogBytes: number;
  problems: number;
  /** Remembered keys dropped at the cap (each may be read again: harmless, counted). */
  forgotten: number;
}

export interface KeyLogWatcher {
  poll(signal?: AbortSignal): Promise<void>;
  /**
   * Polls every `pollMs` until the signal aborts; resolves then. A failed poll (store or cursor store down)
   * is reported to `onProblem` under the listing prefix and retried at the next interval.
   */
  run(pollMs: number, signal: AbortSignal): Promise<void>;
  readonly stats: Readonly<KeyLogWatcherStats>;
  readonly cursor: string | undefined;
}

export const DEFAULT_KEY_LOG_LATENESS_NS = 3_600_000_000_000n;

/** The listing start that covers the hour of `ns` (every key of that hour sorts after it). */
function hourStart(prefix: string, ns: bigint): string {
  const key = keyLogKey(prefix, "t", ns < 0n ? 0n : ns, 0n);
  const cut = key.lastIndexOf("/", key.lastIndexOf("/") - 1);
  return key.slice(0, cut + 1);
}

export function createKeyLogWatcher(options: KeyLogWatcherOptions): KeyLogWatcher {
  const prefix = options.prefix ?? "";
  const lateness = options.latenessNs ?? DEFAULT_KEY_LOG_LATENESS_NS;
  const maxRemembered = options.maxRemembered ?? 100_000;
  const listPrefix = keysPrefix(prefix);
  const decoder = new TextDecoder();
  /** key -> version (`size:mtime`) of what was read, for keys at or after the re-list start. */
  const seen = new Map<string, string>();
  let cursor: string | undefined;
  let loaded = false;
  const stats: KeyLogWatcherStats = { polls: 0, keyLogsRead: 0, keyLogBytes: 0, problems: 0, forgotten: 0 };

  function relistStart(): string | undefined {
    if (cursor === undefined) return undefined;
    const named = parseBlobKey(cursor);
    if (!named) return undefined; // a cursor outside the time layout: list everything (seen skips repeats)
    return hourStart(prefix, named.startNs - lateness);
  }

  function remember(key: string, version: string): void {
    seen.delete(key);
    seen.set(key, version);
    while (seen.size > maxRemembered) {
      const oldest = seen.keys().next().value as string;
      seen.delete(oldest);
      stats.forgotten++;
    }
  }

  async function poll(signal?: AbortSignal): Promise<void> {
    if (!loaded) {
      cursor = await options.cursor.load();
      loaded = true;
    }
    stats.polls++;
    const start = relistStart();
    const listOptions = {
      ...(start !== undefined && start > listPrefix ? { startAfter: start } : {}),
      ...(signal ? { signal } : {}),
    };
    let newest = cursor;
    for await (const obj of options.store.list(listPrefix, listOptions)) {
      signal?.throwIfAborted();
      if (!isKeyLogKey(obj.key)) continue;
      const version = `${obj.size}:${obj.lastModifiedMs}`;
      if (seen.get(obj.key) === version) continue;
      try {
        const raw = await options.store.readBytes(obj.key, signal ? { signal } : {});
        const bytes = await inflateKeyLog(
          obj.key,
          raw,
          options.maxKeyLogBytes === undefined ? {} : { maxBytes: options.maxKeyLogBytes },
        );
        await options.onKeyLog(obj.key, decoder.decode(bytes));
        stats.keyLogsRead++;
        stats.keyLogBytes += bytes.length;
        remember(obj.key, version);
        if (newest === undefined || obj.key > newest) newest = obj.key;
      } catch (err) {
        if (signal?.aborted) throw err;
        stats.problems++;
        options.onProblem?.(obj.key, err);
      }
    }
    if (newest !== undefined && newest !== cursor) {
      cursor = newest;
      await options.cursor.save(newest);
    }
    const keep = relistStart();
    if (keep !== undefined) for (const key of seen.keys()) if (key <= keep) seen.delete(key);
  }

  return {
    poll,
    async run(pollMs, signal) {
      while (!signal.aborted) {
        try {
          await poll(signal);
        } catch (err) {
          if (signal.aborted) return;
          stats.problems++;
          options.onProblem?.(listPrefix, err);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, pollMs);
          function done() {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            resolve();
          }
          signal.addEventListener("abort", done, { once: true });
        });
      }
    },
    get stats() {
      return stats;
    },
    get cursor() {
      return cursor;
    },
  };
}
