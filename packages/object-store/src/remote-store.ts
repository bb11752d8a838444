/**
 * The skeleton the remote backends (s3://, gs://, azblob://) share, with no SDK in it: the root folder
 * inside the bucket or container, every call through the retry policy (`withRetries`, `resumableRead`),
 * the typed errors built from what the backend makes of its SDK's failure, listing by pages, whole reads,
 * the rule "a body up to one part is one request, retried; a larger one goes in parts", stat and delete.
 * A backend extends `RemoteStore` with its SDK's calls (`listPage`, `openRead`, `putObject`, `putParts`,
 * `statObject`, `deleteObject`) and its error mapping (`failureOf`); it imports its SDK when it is opened.
 */

import { partsOf } from "./body-parts.js";
import {
  BadCredentialsError,
  type CredentialsSource,
  MissingContainerError,
  ObjectNotFoundError,
  PermissionDeniedError,
  type StoreErrorContext,
  type StorePermission,
} from "./errors.js";
import type {
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  ReadBytesOptions,
  ReadOptions,
  WriteOptions,
} from "./object-store.js";
import type { OpenStoreOptions } from "./open-store.js";
import { listAllPages } from "./paged-list.js";
import { joinBytes, readAll } from "./read-all.js";
import { classifyCommonFailure } from "./remote-failure.js";
import { RemoteRoot } from "./remote-root.js";
import {
  type CallFailure,
  DEFAULT_RETRY_POLICY,
  type FailureClassifier,
  type OpenedRead,
  type RetryPolicy,
  resumableRead,
  withRetries,
} from "./retry.js";

/** How a remote store is opened, besides its URL and credentials. */
export interface RemoteStoreOptions extends OpenStoreOptions {
  /** Objects up to this size are one upload request; larger ones go in parts of this size (8 MiB). */
  readonly partBytes?: number;
  /** Told of each retried call, by what it was ("list", "read", "put", "stat", "delete"): counters, tests. */
  readonly onRetry?: (what: string) => void;
}

/**
 * What a backend makes of one failed call of its SDK: one of the failures every store has, or none (then
 * the common classification applies: timeouts, broken connections, throttling, 5xx, anything else).
 */
export interface ProviderFailure {
  readonly kind?:
    | "bad-credentials"
    | "permission-denied"
    | "missing-container"
    | "object-not-found"
    /** The object changed between two parts of one read (another ETag or generation). */
    | "replaced";
  /** The provider's word for bad credentials (a code, a reason), in the error's message. */
  readonly detail?: string;
  readonly status?: number | undefined;
  readonly code?: string | undefined;
  /** The error the common classification sees instead of the SDK's (e.g. a cut body named as a reset). */
  readonly cause?: unknown;
}

export interface RemoteStoreInit {
  /** The URL as reports show it (no secret in it). */
  readonly url: string;
  /** The root folder inside the bucket or container (the URL's path). */
  readonly root: string;
  readonly credentials: CredentialsSource;
  /** The bucket or container, as a missing one is named. */
  readonly container: { readonly kind: string; readonly name: string };
  /** The provider's name of each permission, as a denied one is named (`s3:GetObject`). */
  readonly permissions: Readonly<Record<StorePermission, string>>;
  readonly options: RemoteStoreOptions;
}

/** A body to upload: whole when it fits in one part, else its parts (each its own buffer, so resendable). */
export type UploadBody =
  | { readonly whole: Uint8Array; readonly parts?: never }
  | { readonly whole?: never; readonly parts: AsyncIterable<Uint8Array> };

/** `body` whole when it is at most `partBytes`, else cut into parts of `partBytes` (the last one shorter). */
export async function wholeOrParts(
  body: Uint8Array | AsyncIterable<Uint8Array>,
  partBytes: number,
): Promise<UploadBody> {
  const parts = partsOf(body, partBytes);
  const first = await parts.next();
  const second = first.done ? first : await parts.next();
  if (second.done) return { whole: first.done ? new Uint8Array(0) : first.value };
  return {
    parts: (async function* () {
      yield first.value!;
      yield second.value;
      yield* parts;
    })(),
  };
}

export abstract class RemoteStore implements ObjectStore {
  readonly url: string;
  protected readonly root: RemoteRoot;
  protected readonly policy: RetryPolicy;
  protected readonly partBytes: number;

  constructor(private readonly init: RemoteStoreInit) {
    this.url = init.url;
    this.root = new RemoteRoot(init.root);
    this.policy = init.options.retry ?? DEFAULT_RETRY_POLICY;
    this.partBytes = init.options.partBytes ?? 8 * 1024 * 1024;
  }

  /** What the SDK's failure of a call on `key` (none: a listing) means; `timedOut`: our timeout fired. */
  protected abstract failureOf(err: unknown, key: string | undefined, timedOut: boolean): ProviderFailure;

  abstract listPage(prefix: string, options?: ListOptions): Promise<ListPage>;

  /**
   * Opens object `name` from `range.start` (to `range.end`, exclusive; the range is never empty), of
   * `version` when given; a range that starts at the end opens as an empty body.
   */
  protected abstract openRead(
    name: string,
    range: { readonly start: number; readonly end?: number | undefined },
    version: string | undefined,
    signal: AbortSignal,
  ): Promise<OpenedRead>;

  /** One request that writes `bytes` as object `name` (retried by the caller). */
  protected abstract putObject(name: string, bytes: Uint8Array, signal: AbortSignal): Promise<unknown>;

  /** Writes a body of more than one part as object `name`, with the retries its protocol allows. */
  protected abstract putParts(
    name: string,
    key: string,
    parts: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<void>;

  /** Size and modification time of object `name`; fails as the SDK does when it does not exist. */
  protected abstract statObject(
    name: string,
    signal: AbortSignal,
  ): Promise<{ readonly size: number; readonly lastModifiedMs: number }>;

  /** Deletes object `name`, a missing one included. */
  protected abstract deleteObject(name: string, signal: AbortSignal): Promise<unknown>;

  protected context(key?: string): StoreErrorContext {
    return { store: this.url, credentials: this.init.credentials, ...(key === undefined ? {} : { key }) };
  }

  /** The classifier of calls that need `permission` (on `key`; none: a listing). */
  protected classify(permission: StorePermission, key?: string): FailureClassifier {
    return (err: unknown, timedOut: boolean): CallFailure => {
      const context = this.context(key);
      const failure = this.failureOf(err, key, timedOut);
      const error = timedOut ? undefined : this.typedError(failure, err, context, permission, key);
      if (error) return { retryable: false, error };
      return classifyCommonFailure(failure.cause ?? err, timedOut, context, {
        status: failure.status,
        code: failure.code,
        timeoutMs: this.policy.callTimeoutMs,
      });
    };
  }

  private typedError(
    failure: ProviderFailure,
    cause: unknown,
    context: StoreErrorContext,
    permission: StorePermission,
    key: string | undefined,
  ): Error | undefined {
    switch (failure.kind) {
      case "bad-credentials":
        return new BadCredentialsError(context, failure.detail ?? "", { cause });
      case "permission-denied":
        return new PermissionDeniedError(context, permission, this.init.permissions[permission], { cause });
      case "missing-container":
        return new MissingContainerError(context, this.init.container.kind, this.init.container.name, {
          cause,
        });
      case "object-not-found":
        return new ObjectNotFoundError(key ?? "", { cause, store: this.url });
      case "replaced":
        return new ObjectNotFoundError(key ?? "", { cause, store: `${this.url} (replaced while read)` });
      default:
        return undefined;
    }
  }

  /** `call` under the retry policy, its failures classified as calls needing `permission` on `key`. */
  protected retry<T>(
    what: string,
    permission: StorePermission,
    key: string | undefined,
    call: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetries(call, {
      policy: this.policy,
      classify: this.classify(permission, key),
      signal,
      onRetry: () => this.init.options.onRetry?.(what),
    });
  }

  /**
   * One listed object name into `objects`, or to `onSkipped` when it is no key of this store (a folder
   * marker, a `..` segment). Returns the name under the root: the cursor of a page that ends with it.
   */
  protected addListed(
    objects: ObjectInfo[],
    name: string,
    size: number,
    lastModifiedMs: number,
    options: ListOptions,
  ): string {
    const k = this.root.key(name);
    const listed = name.slice(this.root.folder.length);
    if ("skipped" in k) options.onSkipped?.(listed, k.skipped);
    else objects.push({ key: k.key, size, lastModifiedMs });
    return listed;
  }

  list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    return listAllPages((p, o) => this.listPage(p, o), prefix, options);
  }

  read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const name = this.root.name(key);
    return resumableRead({
      start: options.range?.start ?? 0,
      end: options.range?.end,
      policy: this.policy,
      classify: this.classify("get", key),
      signal: options.signal,
      onRetry: () => this.init.options.onRetry?.("read"),
      open: async (range, version, signal) =>
        range.end !== undefined && range.end <= range.start
          ? { body: [] }
          : this.openRead(name, range, version, signal),
    });
  }

  async readBytes(key: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const expected = expectedReadLength(options);
    if (expected === undefined) {
      const bytes = await readAll(this.read(key, options));
      if (!options.allocate) return bytes;
      const into = options.allocate(bytes.length).subarray(0, bytes.length);
      into.set(bytes);
      return into;
    }
    // The listed size: straight into one buffer; more bytes than that (the object changed) are gathered
    // and the whole copied once more, into a buffer of the true size.
    const allocate = options.allocate ?? ((n: number) => new Uint8Array(n));
    const into = allocate(expected).subarray(0, expected);
    let at = 0;
    let more: Uint8Array[] | undefined;
    for await (const c of this.read(key, options)) {
      if (more) more.push(c);
      else if (at + c.length <= expected) {
        into.set(c, at);
        at += c.length;
      } else {
        const fits = expected - at;
        into.set(c.subarray(0, fits), at);
        at = expected;
        more = [c.subarray(fits)];
      }
    }
    if (!more) return into.subarray(0, at);
    const rest = joinBytes(more);
    const whole = allocate(expected + rest.length).subarray(0, expected + rest.length);
    whole.set(into);
    whole.set(rest, expected);
    return whole;
  }

  /** `sensitive` has no meaning here: the bucket's or container's access control applies. */
  async write(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<void> {
    const name = this.root.name(key);
    const upload = await wholeOrParts(body, this.partBytes);
    if (upload.whole) {
      const bytes = upload.whole;
      await this.retry("put", "put", key, (signal) => this.putObject(name, bytes, signal), options.signal);
      return;
    }
    await this.putParts(name, key, upload.parts, options.signal);
  }

  async delete(key: string): Promise<void> {
    const name = this.root.name(key);
    await this.retry("delete", "delete", key, (signal) => this.deleteObject(name, signal));
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const name = this.root.name(key);
    try {
      const info = await this.retry("stat", "get", key, (signal) => this.statObject(name, signal));
      return { key, size: info.size, lastModifiedMs: info.lastModifiedMs };
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
  }
}

/** The bytes a ranged or whole read of an object of `sizeHint` bytes gives, when a hint is given. */
export function expectedReadLength(options: ReadBytesOptions): number | undefined {
  const size = options.sizeHint;
  if (size === undefined || !Number.isSafeInteger(size) || size < 0) return undefined;
  const start = options.range?.start ?? 0;
  const end = Math.min(options.range?.end ?? size, size);
  return Math.max(0, end - start);
}
