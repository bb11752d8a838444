/**
 * An in-memory store (`memory://<name>`): the same contract as every backend (key order, start-after
 * cursors, ranges, atomic writes), for tests and for wiring that wants a scratch store. Stores of one name
 * are shared within a process.
 */
import { validateKey } from "./directory-store.js";
import { ObjectNotFoundError } from "./errors.js";
import type {
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  ReadBytesOptions,
  ReadOptions,
  WriteOptions,
} from "./object-store.js";
import { listAllPages } from "./paged-list.js";

interface Entry {
  readonly bytes: Uint8Array;
  readonly lastModifiedMs: number;
}

const utf8 = new TextEncoder();
/** UTF-8 byte order, as S3, GCS and Azure list keys. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(utf8.encode(a), utf8.encode(b));
}

export class MemoryStore implements ObjectStore {
  private readonly objects = new Map<string, Entry>();

  constructor(readonly url = "memory://") {}

  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    options.signal?.throwIfAborted();
    const pageSize = options.pageSize ?? 1000;
    const keys = [...this.objects.keys()]
      .filter(
        (k) =>
          k.startsWith(prefix) &&
          (options.startAfter === undefined || compareKeys(k, options.startAfter) > 0),
      )
      .sort(compareKeys);
    const page = keys.slice(0, pageSize);
    const objects = page.map((key) => this.info(key, this.objects.get(key)!));
    return keys.length > pageSize ? { objects, nextStartAfter: page.at(-1)! } : { objects };
  }

  list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    return listAllPages((p, o) => this.listPage(p, o), prefix, options);
  }

  private info(key: string, e: Entry): ObjectInfo {
    return { key, size: e.bytes.length, lastModifiedMs: e.lastModifiedMs };
  }

  private slice(key: string, options: ReadOptions): Uint8Array {
    validateKey(key);
    const e = this.objects.get(key);
    if (!e) throw new ObjectNotFoundError(key);
    const start = options.range?.start ?? 0;
    const end = Math.min(options.range?.end ?? e.bytes.length, e.bytes.length);
    return e.bytes.subarray(Math.min(start, end), end);
  }

  async *read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    options.signal?.throwIfAborted();
    yield this.slice(key, options).slice();
  }

  async readBytes(key: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    const bytes = this.slice(key, options);
    if (!options.allocate) return bytes.slice();
    const into = options.allocate(bytes.length).subarray(0, bytes.length);
    into.set(bytes);
    return into;
  }

  async write(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: WriteOptions = {}) {
    validateKey(key);
    let bytes: Uint8Array;
    if (body instanceof Uint8Array) bytes = body.slice();
    else {
      const parts: Uint8Array[] = [];
      for await (const c of body) {
        options.signal?.throwIfAborted();
        parts.push(c.slice());
      }
      bytes = Buffer.concat(parts);
    }
    this.objects.set(key, { bytes, lastModifiedMs: Date.now() });
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.objects.delete(key);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    const e = this.objects.get(key);
    return e ? this.info(key, e) : undefined;
  }
}
