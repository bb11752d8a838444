export { partsOf } from "./body-parts.js";
export { readCredentialsText } from "./credentials-file.js";
export {
  DirectoryStore,
  PUBLIC_OBJECT_MODE,
  SENSITIVE_OBJECT_MODE,
  validateKey,
} from "./directory-store.js";
export type {
  CredentialsSource,
  ObjectStoreErrorCategory,
  StoreErrorContext,
  StorePermission,
} from "./errors.js";
export {
  BadCredentialsError,
  BadCredentialsFileError,
  describeCredentials,
  InvalidKeyError,
  isObjectNotFound,
  isObjectStoreError,
  MissingContainerError,
  ObjectNotFoundError,
  ObjectStoreError,
  ObjectStoreErrorCode,
  PermissionDeniedError,
  RemoteStoreError,
  StoreTimeoutError,
  StoreUnavailableError,
  StoreUnreachableError,
  UnsupportedStoreUrlError,
} from "./errors.js";
export { createLazyStore } from "./lazy-store.js";
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
export {
  asStoreCannotOpen,
  isStoreCannotOpen,
  openCheckedStore,
  StoreCannotOpenError,
} from "./open-check.js";
export type { OpenStoreOptions, StoreFactory } from "./open-store.js";
export { openStore, registerStoreScheme, storeSchemes } from "./open-store.js";
export { listAllPages } from "./paged-list.js";
export { joinBytes, readAll } from "./read-all.js";
export { ReadOnlyStoreError, readOnlyStore } from "./read-only-store.js";
export { classifyCommonFailure, isRetryableStatus, networkCodeOf } from "./remote-failure.js";
export { RemoteRoot } from "./remote-root.js";
export type { ProviderFailure, RemoteStoreInit, RemoteStoreOptions, UploadBody } from "./remote-store.js";
export { expectedReadLength, RemoteStore, wholeOrParts } from "./remote-store.js";
export { endpointOption, parseStoreUrl, rejectUrlCredentials } from "./remote-url.js";
export type {
  CallFailure,
  FailureClassifier,
  OpenedRead,
  ResumableReadOptions,
  RetryContext,
  RetryPolicy,
} from "./retry.js";
export { backoffMs, CallDeadline, DEFAULT_RETRY_POLICY, resumableRead, sleep, withRetries } from "./retry.js";
export type { SerializedError } from "./thread-errors.js";
export { reviveError, serializeError } from "./thread-errors.js";
