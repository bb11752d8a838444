/**
 * Which blobs of a store belong to a time window: CTAP keys carry the blob's start time (docs/tap-format.md
 * section 6), so the window is a key filter, not a read. A blob starting up to `lookbackNs` before `since`
 * is included, since its records may reach into the window.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import { dataPrefix, parseBlobKey } from "@cloudtap/tap-format";
import type { BlobSource } from "./stitch-job.js";

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

/** Data blobs in key order, filtered by the window. Keys that are not CTAP blob keys are skipped. */
export async function* listBlobs(
  store: ObjectStore,
  window: BlobWindow = {},
): AsyncGenerator<BlobSource & { size: number }> {
  const lower =
    window.sinceNs === undefined ? undefined : window.sinceNs - (window.lookbackNs ?? DEFAULT_LOOKBACK_NS);
  for await (const obj of store.list(
    dataPrefix(window.prefix ?? ""),
    window.signal ? { signal: window.signal } : {},
  )) {
    const k = parseBlobKey(obj.key);
    if (!k || k.kind !== "data") continue;
    if (lower !== undefined && k.startNs < lower) continue;
    if (window.untilNs !== undefined && k.startNs >= window.untilNs) continue;
    yield {
      key: obj.key,
      size: obj.size,
      read: () => store.read(obj.key, window.signal ? { signal: window.signal } : {}),
    };
  }
}
