/**
 * Key logs in a store: which objects are key logs, how one is read (plain or gzip, with a cap on what it
 * inflates to), and every key log of a window. The one rule for all of them: the CLI, `inspect`, the
 * stitch job (key logs met among the blobs) and the key-broker call this code.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import { keysPrefix, parseBlobKey } from "@cloudtap/tap-format";
import { DEFAULT_LOOKBACK_NS } from "./blob-listing.js";
import type { BlobProblem } from "./blob-source.js";
import { FetchError, FetchErrorCode, isFetchError, ObjectTooLargeError } from "./errors.js";

/** `.keylog` (RFC 9850 / NSS text) or `.keylog.gz` under a store's `keys/` prefix. */
export function isKeyLogKey(key: string): boolean {
  return key.endsWith(".keylog") || key.endsWith(".keylog.gz");
}

/** What one key log may inflate to. Default 256 MiB: a day of keys of a busy tapper is far below. */
export const DEFAULT_MAX_KEY_LOG_BYTES = 256 * 1024 * 1024;

/** Keys land after the data they decrypt: key logs up to this long after the window's end are read. */
export const DEFAULT_KEY_LATENESS_NS = 3_600_000_000_000n;

export interface KeyLogReadOptions {
  readonly maxBytes?: number;
}

/**
 * A key log's bytes as they are to be parsed: inflated when the key ends in `.gz`. Throws a `FetchError`
 * naming the object when it does not inflate or inflates past `maxBytes`.
 */
export async function inflateKeyLog(
  key: string,
  bytes: Uint8Array,
  options: KeyLogReadOptions = {},
): Promise<Uint8Array> {
  const limit = options.maxBytes ?? DEFAULT_MAX_KEY_LOG_BYTES;
  if (!key.endsWith(".gz")) {
    if (bytes.length > limit) throw new ObjectTooLargeError(key, limit);
    return bytes;
  }
  return gunzipCapped(key, bytes, limit);
}

/** Inflates gzip bytes, stopping as soon as the output passes `limit` (never holds more than that). */
export async function gunzipCapped(key: string, bytes: Uint8Array, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream("gzip"));
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw new ObjectTooLargeError(key, limit);
      parts.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    if (isFetchError(err)) throw err;
    throw new FetchError(
      FetchErrorCode.Decompress,
      key,
      `does not inflate: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface KeyLogWindow extends KeyLogReadOptions {
  readonly prefix?: string;
  /** Unix ns: key logs named before `sinceNs - lookbackNs` are skipped. Default: no lower bound. */
  readonly sinceNs?: bigint;
  /** Unix ns: key logs named after `untilNs + latenessNs` are skipped. Default: no upper bound. */
  readonly untilNs?: bigint;
  readonly lookbackNs?: bigint;
  readonly latenessNs?: bigint;
  readonly signal?: AbortSignal;
}

export interface KeyLogText {
  readonly key: string;
  readonly text: string;
}

export interface KeyLogsRead {
  /** Every key log read, in key order. */
  readonly keyLogs: readonly KeyLogText[];
  /** Key logs that could not be read or inflated (the run goes on without them). */
  readonly problems: readonly BlobProblem[];
}

/**
 * Every key log of a store's window, read and inflated. Key-log names that carry no time (not in the
 * `keys/YYYY/...` layout) are always included. One bad object is a problem in the result, not an error.
 */
export async function readKeyLogs(store: ObjectStore, window: KeyLogWindow = {}): Promise<KeyLogsRead> {
  const lower =
    window.sinceNs === undefined ? undefined : window.sinceNs - (window.lookbackNs ?? DEFAULT_LOOKBACK_NS);
  const upper =
    window.untilNs === undefined
      ? undefined
      : window.untilNs + (window.latenessNs ?? DEFAULT_KEY_LATENESS_NS);
  const opts = window.signal ? { signal: window.signal } : {};
  const keyLogs: KeyLogText[] = [];
  const problems: BlobProblem[] = [];
  const decoder = new TextDecoder();
  const listing = {
    ...opts,
    onSkipped: (key: string, why: string) => {
      if (isKeyLogKey(key))
        problems.push({ blob: key, kind: FetchErrorCode.ReadFailed, message: `not read: ${why}` });
    },
  };
  for await (const obj of store.list(keysPrefix(window.prefix ?? ""), listing)) {
    if (!isKeyLogKey(obj.key)) continue;
    const named = parseBlobKey(obj.key);
    if (named && lower !== undefined && named.startNs < lower) continue;
    if (named && upper !== undefined && named.startNs >= upper) continue;
    try {
      const bytes = await inflateKeyLog(obj.key, await store.readBytes(obj.key, opts), window);
      keyLogs.push({ key: obj.key, text: decoder.decode(bytes) });
    } catch (err) {
      if (window.signal?.aborted) throw err;
      problems.push({
        blob: obj.key,
        kind: isFetchError(err) ? err.code : FetchErrorCode.ReadFailed,
        message: err instanceof Error ? err.message : String(err),
      });
    }
  }
  return { keyLogs, problems };
}
