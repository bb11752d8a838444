/**
 * The local-directory backend: one file per object, `/` in keys as directories. Writes go to a temporary
 * file in the target directory, are fsynced, then renamed over the key, so a reader sees the old object or
 * the whole new one. Temporary files (`.ctap-tmp-*`) are never listed.
 */
import { randomBytes } from "node:crypto";
import { createReadStream, type Dirent } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { InvalidKeyError, ObjectNotFoundError } from "./errors.js";
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

const TMP_PREFIX = ".ctap-tmp-";
/** An object's file mode (less the umask); `sensitive` objects (keys, decrypted content) are owner-only. */
export const PUBLIC_OBJECT_MODE = 0o644;
export const SENSITIVE_OBJECT_MODE = 0o600;
const DEFAULT_PAGE = 1000;

export function validateKey(key: string): void {
  if (key.length === 0) throw new InvalidKeyError(key, "empty");
  if (key.length > 1024) throw new InvalidKeyError(key, "longer than 1024 characters");
  if (key.startsWith("/")) throw new InvalidKeyError(key, "starts with /");
  if (key.includes("\\") || key.includes("\0")) throw new InvalidKeyError(key, "contains \\ or NUL");
  for (const seg of key.split("/")) {
    if (seg === "" || seg === "." || seg === "..") throw new InvalidKeyError(key, `has a "${seg}" segment`);
    if (seg.startsWith(TMP_PREFIX)) throw new InvalidKeyError(key, `segment starts with ${TMP_PREFIX}`);
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

export class DirectoryStore implements ObjectStore {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  private path(key: string): string {
    validateKey(key);
    return join(this.root, ...key.split("/"));
  }

  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const limit = Math.max(1, options.pageSize ?? DEFAULT_PAGE);
    const objects: ObjectInfo[] = [];
    for await (const info of this.walk(
      "",
      prefix,
      options.startAfter ?? "",
      options.signal,
      options.onSkipped,
    )) {
      objects.push(info);
      if (objects.length === limit) return { objects, nextStartAfter: info.key };
    }
    return { objects };
  }

  list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    return listAllPages((p, o) => this.listPage(p, o), prefix, options);
  }

  /**
   * Depth-first walk in key order. Sorting a directory's entries by name, with "/" appended to directory
   * names, yields keys in byte order: every key under directory "a" starts with "a/", so it sorts exactly
   * where "a/" sorts among its siblings.
   */
  private async *walk(
    dirKey: string,
    prefix: string,
    startAfter: string,
    signal?: AbortSignal,
    onSkipped?: ListOptions["onSkipped"],
  ): AsyncGenerator<ObjectInfo> {
    signal?.throwIfAborted();
    let entries: Dirent[];
    try {
      entries = await readdir(dirKey ? join(this.root, ...dirKey.split("/")) : this.root, {
        withFileTypes: true,
      });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    if (onSkipped) {
      for (const e of entries) {
        if (e.name.startsWith(TMP_PREFIX) || e.isDirectory() || e.isFile()) continue;
        const key = `${dirKey}${e.name}`;
        if (!key.startsWith(prefix) || key <= startAfter) continue;
        onSkipped(key, e.isSymbolicLink() ? "a symbolic link (never followed)" : "not a regular file");
      }
    }
    const named = entries
      .filter((e) => !e.name.startsWith(TMP_PREFIX) && (e.isDirectory() || e.isFile()))
      .map((e) => ({ e, sortKey: `${dirKey}${e.name}${e.isDirectory() ? "/" : ""}` }));
    named.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const { e, sortKey } of named) {
      if (e.isDirectory()) {
        // Descend only where keys can match the prefix and can be greater than startAfter.
        if (!(sortKey.startsWith(prefix) || prefix.startsWith(sortKey))) continue;
        if (startAfter > sortKey && !startAfter.startsWith(sortKey)) continue;
        yield* this.walk(sortKey, prefix, startAfter, signal, onSkipped);
      } else {
        if (!sortKey.startsWith(prefix) || sortKey <= startAfter) continue;
        let st: Awaited<ReturnType<typeof stat>>;
        try {
          st = await stat(join(this.root, ...sortKey.split("/")));
        } catch (err) {
          if (isMissing(err)) continue; // deleted while listing
          throw err;
        }
        yield { key: sortKey, size: st.size, lastModifiedMs: st.mtimeMs };
      }
    }
  }

  async *read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const path = this.path(key);
    const start = options.range?.start ?? 0;
    const end = options.range?.end;
    if (end !== undefined && end <= start) return;
    const stream = createReadStream(path, {
      start,
      ...(end === undefined ? {} : { end: end - 1 }),
      highWaterMark: 1024 * 1024,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (err) {
      if (isMissing(err)) throw new ObjectNotFoundError(key, { cause: err });
      throw err;
    }
  }

  /**
   * One positioned read for the whole object (or range), not a stream of small reads: the thread pool fills
   * the buffer while the caller's thread keeps working, which is what read-ahead needs.
   */
  async readBytes(key: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const path = this.path(key);
    options.signal?.throwIfAborted();
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, "r");
    } catch (err) {
      if (isMissing(err)) throw new ObjectNotFoundError(key, { cause: err });
      throw err;
    }
    try {
      const size = (await fh.stat()).size;
      const start = Math.min(options.range?.start ?? 0, size);
      const end = Math.min(options.range?.end ?? size, size);
      const want = Math.max(0, end - start);
      let out: Uint8Array;
      if (!options.allocate) out = new Uint8Array(want);
      else {
        const given = options.allocate(want);
        if (given.length < want) throw new RangeError(`allocate gave ${given.length} bytes for ${want}`);
        out = given.subarray(0, want);
      }
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await fh.read(out, got, out.length - got, start + got);
        if (bytesRead === 0) break; // truncated while reading
        got += bytesRead;
      }
      return got === out.length ? out : out.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  async write(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<void> {
    const path = this.path(key);
    const dir = dirname(path);
    await mkdir(dir, { recursive: true });
    const tmp = `${dir}${sep}${TMP_PREFIX}${randomBytes(8).toString("hex")}`;
    // "wx" is O_CREAT|O_EXCL: a random name, never an existing file, so the mode given is the file's.
    const fh = await open(tmp, "wx", options.sensitive ? SENSITIVE_OBJECT_MODE : PUBLIC_OBJECT_MODE);
    let ok = false;
    try {
      if (body instanceof Uint8Array) {
        await fh.writeFile(body);
      } else {
        for await (const chunk of body) {
          options.signal?.throwIfAborted();
          await fh.write(chunk);
        }
      }
      await fh.sync();
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await unlink(tmp).catch(() => {});
    }
    await rename(tmp, path);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await stat(this.path(key));
      return st.isFile() ? { key, size: st.size, lastModifiedMs: st.mtimeMs } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }
}
