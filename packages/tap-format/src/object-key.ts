/**
 * Object keys of tapped data and key logs. Keys sort by time: a listing in key order is a listing in time
 * order per tapper, and a time window maps to a key range. See docs/tap-format.md, "Object keys".
 *
 *   <prefix>/data/YYYY/MM/DD/HH/<tapper-id>/<start-ns:20 digits>-<sequence:10 digits>.ctap
 *   <prefix>/keys/YYYY/MM/DD/HH/<tapper-id>/<start-ns:20 digits>-<sequence:10 digits>.keylog[.gz]
 */
import { isTapperId } from "./tapper-id.js";

export const DATA_DIR = "data";
export const KEYS_DIR = "keys";
export const BLOB_SUFFIX = ".ctap";
export const KEYLOG_SUFFIX = ".keylog";

function join(prefix: string, rest: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  return p ? `${p}/${rest}` : rest;
}

function hourPath(ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${pad(d.getUTCHours())}`;
}

function leaf(startNs: bigint, sequence: bigint): string {
  return `${startNs.toString().padStart(20, "0")}-${sequence.toString().padStart(10, "0")}`;
}

export function dataBlobKey(prefix: string, tapperId: string, startNs: bigint, sequence: bigint): string {
  return join(
    prefix,
    `${DATA_DIR}/${hourPath(startNs)}/${tapperId}/${leaf(startNs, sequence)}${BLOB_SUFFIX}`,
  );
}

export function keyLogKey(
  prefix: string,
  tapperId: string,
  startNs: bigint,
  sequence: bigint,
  gzip = false,
): string {
  const suffix = gzip ? `${KEYLOG_SUFFIX}.gz` : KEYLOG_SUFFIX;
  return join(prefix, `${KEYS_DIR}/${hourPath(startNs)}/${tapperId}/${leaf(startNs, sequence)}${suffix}`);
}

/** The listing prefix of all data blobs (`<prefix>/data/`). */
export function dataPrefix(prefix: string): string {
  return join(prefix, `${DATA_DIR}/`);
}

/** The listing prefix of all key logs (`<prefix>/keys/`). */
export function keysPrefix(prefix: string): string {
  return join(prefix, `${KEYS_DIR}/`);
}

/**
 * The listing prefix of one UTC hour of data blobs; callers list hour by hour across a time window, since
 * tapper ids sit below the hour.
 */
export function dataHourPrefix(prefix: string, ns: bigint): string {
  return join(prefix, `${DATA_DIR}/${hourPath(ns)}/`);
}

export interface ParsedBlobKey {
  readonly kind: "data" | "keys";
  readonly prefix: string;
  readonly tapperId: string;
  readonly startNs: bigint;
  readonly sequence: bigint;
  readonly gzip: boolean;
}
const KEY_RE =
  /^(?:(.*)\/)?(data|keys)\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/([A-Za-z0-9._-]+)\/(\d{20})-(\d{10})(\.ctap|\.keylog|\.keylog\.gz)$/;

/** Parses a key made by `dataBlobKey` / `keyLogKey`; undefined for anything else. */
export function parseBlobKey(key: string): ParsedBlobKey | undefined {
  const m = KEY_RE.exec(key);
  if (!m) return undefined;
  const kind = m[2] as "data" | "keys";
  const suffix = m[10]!;
  if ((kind === "data") !== (suffix === BLOB_SUFFIX) || !isTapperId(m[7]!)) return undefined;
  return {
    kind,
    prefix: m[1] ?? "",
    tapperId: m[7]!,
    startNs: BigInt(m[8]!),
    sequence: BigInt(m[9]!),
    gzip: suffix.endsWith(".gz"),
  };
}
