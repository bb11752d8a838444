/**
 * The object-store interface every backend implements. Keys are `/`-separated strings without a leading
 * slash; listing returns them in ascending byte order of their UTF-8 form, as S3, GCS and Azure do.
 */

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** Last modification time in milliseconds since the Unix epoch. */
  readonly lastModifiedMs: number;
}

export interface ListOptions {
  /** Only keys strictly greater than this one (a cursor from an earlier page or run). */
  readonly startAfter?: string;
  /** Maximum keys per page (backends may return fewer). Default 1000. */
  readonly pageSize?: number;
  readonly signal?: AbortSignal;
  /**
   * Told of each entry under the prefix that is not listed as an object, and why (a directory store: a
   * symbolic link, which is never followed, or a socket or device), so a caller can report it rather than
   * lose it silently. Backends without such entries never call it.
   */
  readonly onSkipped?: (key: string, why: string) => void;
}

export interface ListPage {
  readonly objects: readonly ObjectInfo[];
  /** Present when more keys may follow: pass it as `startAfter` to get the next page. */
  readonly nextStartAfter?: string;
}

/** A byte range: `start` inclusive, `end` exclusive. An `end` past the object's size is clamped. */
export interface ByteRange {
  readonly start: number;
  readonly end?: number;
}

export interface ReadOptions {
  readonly range?: ByteRange;
  readonly signal?: AbortSignal;
}

export interface ReadBytesOptions extends ReadOptions {
  /**
   * Where `readBytes` puts the bytes: called once with the size, it returns a buffer of at least that many
   * bytes (e.g. a reused or shared one); the result is then a view of it. Default: a new buffer. With a
   * `sizeHint` that proves too small (the object grew since it was listed), it is called a second time
   * with the true size.
   */
  readonly allocate?: (size: number) => Uint8Array;
  /**
   * The object's size as listed. A backend that streams its reads then puts the bytes into one buffer of
   * that size as they arrive, instead of gathering chunks and copying them twice (joined, then into
   * `allocate`'s buffer): a copy of every byte and an allocation per object less.
   */
  readonly sizeHint?: number;
}

export interface WriteOptions {
  readonly signal?: AbortSignal;
  /**
   * The object holds TLS keys or decrypted content: a backend with file modes (the directory store) creates
   * it readable by its owner only (0600). Backends without modes ignore it (their access control applies).
   */
  readonly sensitive?: boolean;
}

export interface ObjectStore {
  /** The URL this store was opened with, with any credentials removed. */
  readonly url: string;
  /** One page of keys under `prefix`, in key order. */
  listPage(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Every key under `prefix`, in key order, paging as it goes. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Streams an object (or a range of it). Throws `ObjectNotFoundError` when the key does not exist. */
  read(key: string, options?: ReadOptions): AsyncIterable<Uint8Array>;
  /** Reads an object (or a range of it) whole. */
  readBytes(key: string, options?: ReadBytesOptions): Promise<Uint8Array>;
  /**
   * Writes an object atomically: readers see the old object or the whole new one, never a part.
   * A body given as an async iterable is streamed.
   */
  write(key: string, body: Uint8Array | AsyncIterable<Uint8Array>, options?: WriteOptions): Promise<void>;
  /** Deletes an object; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Metadata of one object, or undefined when it does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
}
