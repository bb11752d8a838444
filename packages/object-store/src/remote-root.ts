/**
 * Where a remote store's keys live inside its bucket or container: the URL's path is a root folder, and a
 * store key `k` is the object `<root>/k`. Listed names outside the key rules (a "folder" marker ending in
 * `/`, a `..` segment) are not objects of the store: they are reported through `onSkipped`.
 */
import { validateKey } from "./directory-store.js";

export class RemoteRoot {
  /** "" or a folder ending in "/". */
  readonly folder: string;
  constructor(path: string) {
    const trimmed = path.replace(/^\/+/, "").replace(/\/+$/, "");
    this.folder = trimmed === "" ? "" : `${trimmed}/`;
  }
  /** The object name of a store key (validated). */
  name(key: string): string {
    validateKey(key);
    return this.folder + key;
  }
  /** The object name of a listing prefix (not validated: "" and "data/" are prefixes). */
  prefix(prefix: string): string {
    return this.folder + prefix;
  }
  /** The store key of a listed object name, or why it is not one. */
  key(name: string): { key: string } | { skipped: string } {
    const key = name.slice(this.folder.length);
    try {
      validateKey(key);
      return { key };
    } catch (err) {
      return { skipped: `not an object key of this store (${(err as Error).message})` };
    }
  }
}
