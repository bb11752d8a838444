/**
 * Which blobs of a store belong to a time window: CTAP keys carry the blob's start time (docs/tap-format.md
 * section 6), so the window is a key filter, not a read. A blob starting up to `lookbackNs` before `since`
 * is included, since its records may reach into the window.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import { BLOB_SUFFIX, dataPrefix, keysPrefix, parseBlobKey } from "@cloudtap/tap-format";
import type { BlobSource } from "./blob-source.js";
import { FetchError, FetchErrorCode } from "./errors.js";

export interface BlobWindow {
  readonly prefix?: string;
  /** Unix ns; default: no lower bound. */
  readonly sinceNs?: bigint;
  /** Unix ns, exclusive; default: no upper bound. */
  readonly untilNs?: bigint;
  /** Default one hour. */
  readonly lookbackNs?: bigint;
  readonly signal?: AbortSignal;
}

export const DEFAULT_LOOKBACK_NS = 3_600_000_000_000n;

/**
 * A listed entry that is not an object (a symbolic link in a directory store): yielded as a blob whose read
 * fails naming it, so the run reports it among its problems instead of skipping it unseen.
 */
function unreadable(key: string, why: string): BlobSource & { size: number } {
  const fail = () => new FetchError(FetchErrorCode.ReadFailed, key, `not read: ${why}`);
  return {
    key,
    size: 0,
    read: () => ({
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(fail()) }),
    }),
    readBytes: () => Promise.reject(fail()),
  };
}

/**
 * Data blobs in key order, filtered by the window. `.ctap` objects whose key is not in the CTAP layout carry
 * no time: they are always included (as `inspect` reads them). Other keys are not data blobs.
 */
export async function* listBlobs(
  store: ObjectStore,
  window: BlobWindow = {},
): AsyncGenerator<BlobSource & { size: number }> {
  const lower =
    window.sinceNs === undefined ? undefined : window.sinceNs - (window.lookbackNs ?? DEFAULT_LOOKBACK_NS);
  const skipped: (BlobSource & { size: number })[] = [];
  for await (const obj of store.list(dataPrefix(window.prefix ?? ""), {
    ...(window.signal ? { signal: window.signal } : {}),
    onSkipped: (key, why) => {
      if (key.endsWith(BLOB_SUFFIX)) skipped.push(unreadable(key, why));
    },
  })) {
    yield* skipped.splice(0);
    const k = parseBlobKey(obj.key);
    if (!k && !obj.key.endsWith(BLOB_SUFFIX)) continue;
    if (k && k.kind !== "data") continue;
    if (k && lower !== undefined && k.startNs < lower) continue;
    if (k && window.untilNs !== undefined && k.startNs >= window.untilNs) continue;
    yield {
      key: obj.key,
      size: obj.size,
      read: () => store.read(obj.key, window.signal ? { signal: window.signal } : {}),
      readBytes: (options) =>
        store.readBytes(obj.key, {
          ...options,
          sizeHint: obj.size,
          ...(window.signal ? { signal: window.signal } : {}),
        }),
    };
  }
  yield* skipped;
}

/**
 * Key logs (kind "keys") in key order, filtered by the same window: for runs that take keys as they land,
 * interleaved with the data blobs by `sortBlobsByTime`.
 */
export async function* listKeyLogs(
  store: ObjectStore,
  window: BlobWindow = {},
): AsyncGenerator<BlobSource & { size: number }> {
  const lower =
    window.sinceNs === undefined ? undefined : window.sinceNs - (window.lookbackNs ?? DEFAULT_LOOKBACK_NS);
  const opts = window.signal ? { signal: window.signal } : {};
  for await (const obj of store.list(keysPrefix(window.prefix ?? ""), opts)) {
    const k = parseBlobKey(obj.key);
    if (!k || k.kind !== "keys") continue;
    if (lower !== undefined && k.startNs < lower) continue;
    if (window.untilNs !== undefined && k.startNs >= window.untilNs) continue;
    yield {
      key: obj.key,
      kind: "keys",
      size: obj.size,
      read: () => store.read(obj.key, opts),
      readBytes: (options) => store.readBytes(obj.key, { ...options, sizeHint: obj.size, ...opts }),
    };
  }
}

/**
 * Orders listed blobs by their start time (then tapper, then sequence). A store lists keys per hour and
 * tapper, so two tappers' blobs of one hour come tapper by tapper; a connection that moved from one tapper to
 * another (failover) is read in time order only after this sort. One-shot runs sort their whole window.
 */
export function sortBlobsByTime<T extends BlobSource>(blobs: readonly T[]): T[] {
  const keyed = blobs.map((b) => ({ b, k: parseBlobKey(b.key) }));
  keyed.sort((x, y) => {
    const a = x.k;
    const c = y.k;
    if (!a || !c) return a ? -1 : c ? 1 : x.b.key < y.b.key ? -1 : 1;
    if (a.startNs !== c.startNs) return a.startNs < c.startNs ? -1 : 1;
    // At the same time, data before keys: keys that land with the data are "late" by a hair, not early.
    if (a.kind !== c.kind) return a.kind === "data" ? -1 : 1;
    if (a.tapperId !== c.tapperId) return a.tapperId < c.tapperId ? -1 : 1;
    return a.sequence < c.sequence ? -1 : a.sequence > c.sequence ? 1 : 0;
  });
  return keyed.map((x) => x.b);
}
