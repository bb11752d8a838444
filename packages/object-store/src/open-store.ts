import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DirectoryStore } from "./directory-store.js";
import { UnsupportedStoreUrlError } from "./errors.js";
import type { ObjectStore } from "./object-store.js";

/**
 * Opens a store from its URL: a plain path (absolute or relative to the working directory) or a `file://`
 * URL opens the directory backend. Cloud schemes (`s3://`, `gs://`, `az://`) are named in the error until
 * their backends exist.
 */
export function openStore(url: string): ObjectStore {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return new DirectoryStore(resolve(url));
  if (scheme === "file") return new DirectoryStore(fileURLToPath(url));
  throw new UnsupportedStoreUrlError(
    url,
    `the ${scheme}:// backend is not part of this build (directory stores only)`,
  );
}
