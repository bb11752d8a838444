/**
 * Stores by URL scheme: a registry that the wiring fills. The core of this package knows the directory
 * backend (a plain path or `file://`) and the in-memory one (`memory://name`); cloud backends (`s3://`,
 * `gs://`, `azblob://`) are registered by the wiring that ships them, each loaded only when its scheme is
 * used, so a directory run never loads an SDK. A scheme nobody registered is named in the error.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DirectoryStore } from "./directory-store.js";
import { UnsupportedStoreUrlError } from "./errors.js";
import { MemoryStore } from "./memory-store.js";
import type { ObjectStore } from "./object-store.js";
import { readOnlyStore } from "./read-only-store.js";
import type { RetryPolicy } from "./retry.js";

/** How a store is opened, besides its URL. */
export interface OpenStoreOptions {
  /**
   * A credentials file in the format of the store's provider (see each backend); without it a remote
   * backend uses its SDK's environment and default chain. Local stores take none.
   */
  readonly credentialsFile?: string | undefined;
  /** A source store: only list and get; a write or delete throws `ReadOnlyStoreError`. */
  readonly readOnly?: boolean | undefined;
  /** A remote backend's retries and call timeouts (default `DEFAULT_RETRY_POLICY`); local stores take none. */
  readonly retry?: RetryPolicy | undefined;
}

/**
 * Opens a store of one scheme from its whole URL. It returns at once: a remote backend connects (imports
 * its SDK, reads its credentials) on first use, e.g. through `createLazyStore`.
 */
export type StoreFactory = (url: string, options: OpenStoreOptions) => ObjectStore;

const factories = new Map<string, StoreFactory>();
const memoryStores = new Map<string, MemoryStore>();

/** Registers (or replaces) the backend of a URL scheme, e.g. `registerStoreScheme("s3", openS3Store)`. */
export function registerStoreScheme(scheme: string, factory: StoreFactory): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) throw new TypeError(`"${scheme}" is not a URL scheme`);
  factories.set(scheme, factory);
}

/** The schemes that open, the built-in ones included. */
export function storeSchemes(): string[] {
  return ["file", "memory", ...factories.keys()].sort();
}

export function openStore(url: string, options: OpenStoreOptions = {}): ObjectStore {
  const store = openByScheme(url, options);
  return options.readOnly ? readOnlyStore(store) : store;
}

function openByScheme(url: string, options: OpenStoreOptions): ObjectStore {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return new DirectoryStore(resolve(url));
  if (scheme === "file") return new DirectoryStore(fileURLToPath(url));
  if (scheme === "memory") {
    let store = memoryStores.get(url);
    if (!store) {
      store = new MemoryStore(url);
      memoryStores.set(url, store);
    }
    return store;
  }
  const factory = factories.get(scheme);
  if (factory) return factory(url, options);
  throw new UnsupportedStoreUrlError(
    url,
    `no backend for ${scheme}:// in this build (stores: a directory path, ${storeSchemes()
      .map((s) => `${s}://`)
      .join(", ")})`,
  );
}
