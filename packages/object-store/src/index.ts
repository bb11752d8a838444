export {
  DirectoryStore,
  PUBLIC_OBJECT_MODE,
  SENSITIVE_OBJECT_MODE,
  validateKey,
} from "./directory-store.js";
export {
  InvalidKeyError,
  isObjectNotFound,
  ObjectNotFoundError,
  ObjectStoreError,
  ObjectStoreErrorCode,
  UnsupportedStoreUrlError,
} from "./errors.js";
export { MemoryStore } from "./memory-store.js";
export type {
  ByteRange,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  ReadBytesOptions,
  ReadOptions,
  WriteOptions,
} from "./object-store.js";
export type { StoreFactory } from "./open-store.js";
export { openStore, registerStoreScheme, storeSchemes } from "./open-store.js";
export { listAllPages } from "./paged-list.js";
export { readAll } from "./read-all.js";
