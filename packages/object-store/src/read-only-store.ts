/**
 * A source store as readers hold it: list and get only. Writing to or deleting from a source store is a
 * bug, so both throw before reaching the backend, and a reader never needs more than list and get.
 */
import { ObjectStoreError, ObjectStoreErrorCode } from "./errors.js";
import type { ObjectStore } from "./object-store.js";

export class ReadOnlyStoreError extends ObjectStoreError {
  override readonly name = "ReadOnlyStoreError";
  constructor(
    readonly store: string,
    readonly key: string,
    what: "write" | "delete",
  ) {
    super(
      ObjectStoreErrorCode.ReadOnly,
      `${store} is a source store, opened read-only: no ${what} of ${key}`,
    );
  }
}

export function readOnlyStore(store: ObjectStore): ObjectStore {
  return {
    url: store.url,
    listPage: (prefix, options) => store.listPage(prefix, options),
    list: (prefix, options) => store.list(prefix, options),
    read: (key, options) => store.read(key, options),
    readBytes: (key, options) => store.readBytes(key, options),
    stat: (key) => store.stat(key),
    write: async (key) => {
      throw new ReadOnlyStoreError(store.url, key, "write");
    },
    delete: async (key) => {
      throw new ReadOnlyStoreError(store.url, key, "delete");
    },
  };
}
