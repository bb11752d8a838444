export { DirectoryStore, validateKey } from "./directory-store.js";
export {
  InvalidKeyError,
  isObjectNotFound,
  ObjectNotFoundError,
  ObjectStoreError,
  ObjectStoreErrorCode,
  UnsupportedStoreUrlError,
} from "./errors.js";
export type {
  ByteRange,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  ReadBytesOptions,
  ReadOptions,
} from "./object-store.js";
export { openStore } from "./open-store.js";
export { readAll } from "./read-all.js";
