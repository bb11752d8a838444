/**
 * Helpers for this package's tests: temporary stores, a store that logs its writes, and a reader that puts the
 * tapped streams back together from the blobs (the stitcher's job, done here the simple way: everything in
 * memory, records keyed by offset). Not exported from the package.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import {
  type BlobHeader,
  type ConnCloseRecord,
  type ConnOpenRecord,
  type CtapError,
  dataPrefix,
  isCtapError,
  readCtap,
  type TapRecord,
} from "@cloudtap/tap-format";

export async function withTempStore<T>(fn: (store: ObjectStore, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "tapsim-test-"));
  try {
    return await fn(openStore(dir), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wraps a store so that every write start is logged, in order, into `log`. */
export function loggingStore(inner: ObjectStore, log: string[]): ObjectStore {
  return {
    get url() {
      return inner.url;
    },
    listPage: (prefix, options) => inner.listPage(prefix, options),
    list: (prefix, options) => inner.list(prefix, options),
    read: (key, options) => inner.read(key, options),
    readBytes: (key, options) => inner.readBytes(key, options),
    write: (key, body, options) => {
      log.push(key);
      return inner.write(key, body, options);
    },
    delete: (key) => inner.delete(key),
    stat: (key) => inner.stat(key),
  };
}

export interface ReadBlob {
  readonly key: string;
  readonly header: BlobHeader;
  /** Payloads copied. */
  readonly records: TapRecord[];
  readonly endNs?: bigint;
  /** Set when the blob could not be read to its end. */
  readonly error?: CtapError;
}

function copyRecord(r: TapRecord): TapRecord {
  return r.type === "data" || r.type === "datagram" ? { ...r, payload: r.payload.slice() } : r;
}

/** Reads every data blob under `prefix`, in key order. */
export async function readBlobs(store: ObjectStore, prefix: string): Promise<ReadBlob[]> {
  const out: ReadBlob[] = [];
  for await (const info of store.list(dataPrefix(prefix))) {
    let header: BlobHeader | undefined;
    const records: TapRecord[] = [];
    let endNs: bigint | undefined;
    let error: CtapError | undefined;
    try {
      for await (const item of readCtap(store.read(info.key))) {
        if (item.type === "header") header = item.header;
        else if (item.type === "blob-end") endNs = item.endNs;
        else if (item.type !== "corruption") records.push(copyRecord(item));
      }
    } catch (err) {
      if (!isCtapError(err)) throw err;
      error = err;
    }
    if (!header) throw new Error(`${info.key}: no header`);
    out.push({
      key: info.key,
      header,
      records,
      ...(endNs !== undefined ? { endNs } : {}),
      ...(error ? { error } : {}),
    });
  }
  return out;
}

export interface TappedConnection {
  readonly opens: ConnOpenRecord[];
  readonly closes: ConnCloseRecord[];
  readonly c2s: Map<number, Uint8Array>;
  readonly s2c: Map<number, Uint8Array>;
  /** Keys of the blobs holding any record of the connection. */
  readonly blobKeys: Set<string>;
  readonly tapperIds: Set<string>;
}

export class ConflictingDuplicateError extends Error {
  override readonly name = "ConflictingDuplicateError";
}

/** Groups the records of all blobs by connection; data by offset and datagrams by index, de-duplicated. */
export function collectConnections(blobs: readonly ReadBlob[]): Map<string, TappedConnection> {
  const conns = new Map<string, TappedConnection>();
  const get = (id: string) => {
    let c = conns.get(id);
    if (!c) {
      c = {
        opens: [],
        closes: [],
        c2s: new Map(),
        s2c: new Map(),
        blobKeys: new Set(),
        tapperIds: new Set(),
      };
      conns.set(id, c);
    }
    return c;
  };
  for (const blob of blobs) {
    for (const r of blob.records) {
      const c = get(r.connId);
      c.blobKeys.add(blob.key);
      c.tapperIds.add(blob.header.tapperId);
      if (r.type === "conn-open") c.opens.push(r);
      else if (r.type === "conn-close") c.closes.push(r);
      else {
        const map = r.direction === 0 ? c.c2s : c.s2c;
        const at = r.type === "data" ? r.offset : r.index;
        const seen = map.get(at);
        if (seen && Buffer.compare(seen, r.payload) !== 0) {
          throw new ConflictingDuplicateError(`${r.connId} ${r.direction} at ${at}: duplicates differ`);
        }
        map.set(at, r.payload);
      }
    }
  }
  return conns;
}

export interface Reassembled {
  readonly length: number;
  readonly sha256: string;
  /** Missing byte ranges [start, end) before `length`. */
  readonly holes: readonly (readonly [number, number])[];
}

/** A TCP stream from its data records by offset (records may overlap only as exact duplicates). */
export function reassembleStream(pieces: ReadonlyMap<number, Uint8Array>): Reassembled {
  const hash = createHash("sha256");
  const holes: [number, number][] = [];
  let at = 0;
  for (const offset of [...pieces.keys()].sort((a, b) => a - b)) {
    const payload = pieces.get(offset)!;
    if (offset > at) holes.push([at, offset]);
    else if (offset < at) throw new Error(`overlapping records at ${offset} (stream at ${at})`);
    hash.update(payload);
    at = offset + payload.length;
  }
  return { length: at, sha256: hash.digest("hex"), holes };
}

/** A UDP direction: the datagram payloads in index order, concatenated. */
export function concatDatagrams(pieces: ReadonlyMap<number, Uint8Array>): Reassembled {
  const hash = createHash("sha256");
  let length = 0;
  const indexes = [...pieces.keys()].sort((a, b) => a - b);
  indexes.forEach((index, i) => {
    if (index !== i) throw new Error(`datagram index ${index} where ${i} was expected`);
    const p = pieces.get(index)!;
    hash.update(p);
    length += p.length;
  });
  return { length, sha256: hash.digest("hex"), holes: [] };
}

/** The first `n` bytes of a TCP stream (must be present without holes). */
export function streamPrefix(pieces: ReadonlyMap<number, Uint8Array>, n: number): Buffer {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const offset of [...pieces.keys()].sort((a, b) => a - b)) {
    if (at >= n) break;
    if (offset !== at) throw new Error(`hole at ${at}`);
    const p = pieces.get(offset)!;
    parts.push(p);
    at += p.length;
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** Reads a whole key log store prefix into lines. */
export async function readKeyLogLines(
  store: ObjectStore,
  keysPrefix: string,
): Promise<{ keys: string[]; lines: string[] }> {
  const keys: string[] = [];
  const lines: string[] = [];
  for await (const info of store.list(keysPrefix)) {
    keys.push(info.key);
    const text = new TextDecoder().decode(await store.readBytes(info.key));
    lines.push(...text.split("\n").filter((l) => l.length > 0));
  }
  return { keys, lines };
}
