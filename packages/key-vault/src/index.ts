export type { CursorStore } from "./cursor-store.js";
export {
  createKvCursorStore,
  createMemoryCursorStore,
  keyBrokerCursorName,
  openKvCursorStore,
} from "./cursor-store.js";
export {
  BadClientRandomError,
  isKeyVaultError,
  KeyVaultError,
  KeyVaultErrorCode,
  TooManyWaitersError,
  UnsealError,
  VaultUnavailableError,
} from "./errors.js";
export type {
  IngestResult,
  KeyBroker,
  KeyBrokerOptions,
  KeyBrokerStats,
  KeyEntry,
  WaitForKeysResult,
} from "./key-broker.js";
export { createKeyBroker, DEFAULT_KEY_BROKER_OPTIONS } from "./key-broker.js";
export type { MergeResult, SecretCandidates } from "./key-log-lines.js";
export {
  formatKeyLogLines,
  groupByClientRandom,
  mergeKeyLogLines,
  parseKeyLogLines,
} from "./key-log-lines.js";
export type { KeyLogWatcher, KeyLogWatcherOptions, KeyLogWatcherStats } from "./key-log-watcher.js";
export { createKeyLogWatcher, DEFAULT_KEY_LOG_LATENESS_NS } from "./key-log-watcher.js";
export { keyServiceHandlers } from "./key-service.js";
export type { NatsVaultOptions } from "./nats-vault.js";
export { createNatsVault, DEFAULT_KEY_TTL_MS, openNatsVault } from "./nats-vault.js";
export type { SealedBox } from "./sealed-box.js";
export { createSealedBox, SEALED_OVERHEAD_BYTES } from "./sealed-box.js";
export type { MemoryVaultOptions, SecretVault } from "./secret-vault.js";
export { checkClientRandomHex, createMemoryVault } from "./secret-vault.js";
