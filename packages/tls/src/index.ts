export type {
  BulkCipher,
  CipherSuite,
  HashName,
} from "./cipher-suites.js";
export {
  BulkCiphers,
  CIPHER_SUITES,
  CipherKind,
  cipherSuiteName,
  getCipherSuite,
  TlsVersion,
  tlsVersionName,
} from "./cipher-suites.js";
export { isTlsError, TlsArgumentError, TlsError, TlsErrorCode, TlsOptionError } from "./errors.js";
export type { ClientHello, EncryptedExtensions, ServerHello, TlsAlert } from "./handshake.js";
export {
  AlertDescription,
  ExtensionType,
  HandshakeType,
  HELLO_RETRY_REQUEST_RANDOM,
  parseClientHello,
  parseEncryptedExtensions,
  parseServerHello,
} from "./handshake.js";
export type {
  KeyLogEntry,
  KeyLogParseResult,
  KeyLogParser,
  KeyLogParserOptions,
  KeyLogSkippedLine,
  KeyLogStats,
} from "./key-log.js";
export {
  createKeyLogParser,
  DEFAULT_KEY_LOG_PARSER_OPTIONS,
  DEFAULT_SKIPPED_LINES_LISTED,
  describeKeyLogSkips,
  describeSkippedLine,
  isKeyLogLabel,
  KeyLogLabel,
  KeyLogProblem,
  parseKeyLog,
} from "./key-log.js";
export type { KdfHash, Tls12KeyBlock, Tls12WriteKeys, TrafficKeys } from "./key-schedule.js";
export {
  deriveTls12KeyBlock,
  deriveTls13TrafficKeys,
  hkdfExpand,
  hkdfExpandLabel,
  nextTrafficSecret,
  tlsPrf,
} from "./key-schedule.js";
export type {
  KeyStore,
  KeyStoreAddResult,
  KeyStoreOptions,
  KeyStoreStats,
  KeyWaitOptions,
  KeyWaitResult,
  TlsKeySource,
  TlsSecrets,
} from "./key-store.js";
export {
  createKeyStore,
  DEFAULT_KEY_STORE_OPTIONS,
  KEY_STORE_ENTRY_OVERHEAD_BYTES,
  KeyWaitStatus,
} from "./key-store.js";
export { nativeAead, recyclePlaintext } from "./native-aead.js";
export { peekClientRandom } from "./peek-client-random.js";
export { ContentType, MAX_RECORD_FRAGMENT_LENGTH } from "./record-framer.js";
export { IntegrityFailure } from "./record-protection.js";
export type {
  TlsDirectionStats,
  TlsDirectionStatus,
  TlsHandshakeInfo,
  TlsKeyRequest,
  TlsOutcome,
  TlsSessionStats,
} from "./session-report.js";
export { StopReason, TlsDirection, TlsOutcomeKind, WaitReason } from "./session-report.js";
export type { TlsSession, TlsSessionOptions, TlsSessionOutput } from "./tls-session.js";
export { createTlsSession, DEFAULT_TLS_SESSION_OPTIONS } from "./tls-session.js";
