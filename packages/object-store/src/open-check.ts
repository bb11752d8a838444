/**
 * Whether a store can be opened at all, checked once when a service starts (the fetcher its data store, the
 * key-broker its key store): a directory that does not exist, credentials the store refuses, a missing
 * bucket or container, a permission not granted, an unreadable credentials file or an unsupported URL will
 * not heal by retrying, so they are one typed error, `StoreCannotOpenError`, naming the store. A store that
 * does not answer (unreachable, timeout, throttled) is not that: its error is thrown as it is, for the caller
 * to retry.
 */
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { ObjectStoreError, ObjectStoreErrorCode } from "./errors.js";
import type { ObjectStore } from "./object-store.js";

/** The codes of an `ObjectStoreError` that say the store cannot be opened (retrying will not help). */
const CANNOT_OPEN: ReadonlySet<string> = new Set([
  ObjectStoreErrorCode.BadCredentials,
  ObjectStoreErrorCode.PermissionDenied,
  ObjectStoreErrorCode.MissingContainer,
  ObjectStoreErrorCode.BadCredentialsFile,
  ObjectStoreErrorCode.UnsupportedUrl,
]);

export class StoreCannotOpenError extends Error {
  override readonly name = "StoreCannotOpenError";
  constructor(
    /** The store as it was named (URL or path, credentials removed by the backend's own errors). */
    readonly store: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`store cannot be opened: ${store}: ${detail}`, options);
  }
}

export function isStoreCannotOpen(err: unknown): err is StoreCannotOpenError {
  return err instanceof StoreCannotOpenError;
}

/** A store error that means the store cannot be opened (see `StoreCannotOpenError`), as that error. */
export function asStoreCannotOpen(store: string, err: unknown): StoreCannotOpenError | undefined {
  if (err instanceof StoreCannotOpenError) return err;
  if (err instanceof ObjectStoreError && CANNOT_OPEN.has(err.code))
    return new StoreCannotOpenError(store, err.message, { cause: err });
  return undefined;
}

/**
 * Opens `open()` (e.g. `() => openStore(url, options)`) and lists one object under `prefix`: resolves with
 * the store, or rejects with `StoreCannotOpenError` (`name` names the store) or the store's transient error.
 */
export async function openCheckedStore(
  name: string,
  open: () => ObjectStore,
  prefix = "",
): Promise<ObjectStore> {
  let store: ObjectStore;
  try {
    store = open();
  } catch (err) {
    throw asStoreCannotOpen(name, err) ?? err;
  }
  if (/^file:/i.test(store.url)) {
    const root = fileURLToPath(store.url);
    const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
      throw new StoreCannotOpenError(
        name,
        err.code === "ENOENT" ? "no such file or directory" : err.message,
        { cause: err },
      );
    });
    if (!st.isDirectory()) throw new StoreCannotOpenError(name, "not a directory");
    return store;
  }
  try {
    await store.listPage(prefix, { pageSize: 1 });
  } catch (err) {
    throw asStoreCannotOpen(name, err) ?? err;
  }
  return store;
}
