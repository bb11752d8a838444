/**
 * What a TlsSession reports: directions, why a direction stops or waits, the connection's outcome, the
 * handshake facts and the counters.
 */
import type { KeyLogLabel } from "./key-log.js";
import type { IntegrityFailure } from "./record-protection.js";

export const TlsDirection = {
  ClientToServer: 0,
  ServerToClient: 1,
} as const;
export type TlsDirection = (typeof TlsDirection)[keyof typeof TlsDirection];

/** Why a direction stopped decrypting. */
export const StopReason = {
  /** The connection's first bytes are not a TLS handshake. */
  NotTls: "not-tls",
  /** TLS framing or handshake broke after the connection was recognised as TLS. */
  Malformed: "malformed",
  /** A hole in the stream (`gap`). */
  Gap: "gap",
  /** The secrets never became available. */
  NoKeys: "no-keys",
  /** A record failed its AEAD tag, MAC or padding check. */
  IntegrityFailure: "integrity-failure",
  UnsupportedSuite: "unsupported-suite",
  UnsupportedVersion: "unsupported-version",
  /** The session's queue cap was reached while waiting. */
  BufferOverflow: "buffer-overflow",
  /** The stream ended before the hello needed to decrypt it was seen (e.g. a capture started mid-connection). */
  NoHandshake: "no-handshake",
  /** A defect in this package; counted so that it shows, never thrown. */
  InternalError: "internal-error",
} as const;
export type StopReason = (typeof StopReason)[keyof typeof StopReason];

/** What a waiting direction waits for. */
export const WaitReason = {
  ClientHello: "client-hello",
  ServerHello: "server-hello",
  Keys: "keys",
} as const;
export type WaitReason = (typeof WaitReason)[keyof typeof WaitReason];

export const TlsOutcomeKind = {
  /** Nothing to decide yet (no ServerHello, or no encrypted record yet). */
  Pending: "pending",
  /** Every encrypted record so far was decrypted. */
  Decrypted: "decrypted",
  /** Decrypted, but the secrets arrived after the data (it was queued). */
  KeysLate: "keys-late",
  /** Waiting for secrets now. */
  WaitingForKeys: "waiting-for-keys",
  NoKeys: "no-keys",
  UnsupportedSuite: "unsupported-suite",
  UnsupportedVersion: "unsupported-version",
  IntegrityFailure: "integrity-failure",
  NotTls: "not-tls",
  Gap: "gap",
  Malformed: "malformed",
  BufferOverflow: "buffer-overflow",
  NoHandshake: "no-handshake",
  InternalError: "internal-error",
} as const;
export type TlsOutcomeKind = (typeof TlsOutcomeKind)[keyof typeof TlsOutcomeKind];

export interface TlsDirectionStatus {
  readonly state: "open" | "waiting" | "stopped";
  readonly waitingFor: WaitReason | undefined;
  readonly stopReason: StopReason | undefined;
  /** For example the integrity failure reason or the unsupported suite's name. Never key material. */
  readonly stopDetail: string | undefined;
}

export interface TlsOutcome {
  readonly kind: TlsOutcomeKind;
  readonly detail: string | undefined;
  readonly directions: readonly [TlsDirectionStatus, TlsDirectionStatus];
}

export interface TlsHandshakeInfo {
  /** Negotiated version (0x0303 = TLS 1.2, 0x0304 = TLS 1.3), once the ServerHello was seen. */
  readonly version: number | undefined;
  readonly versionName: string | undefined;
  readonly cipherSuite: number | undefined;
  readonly cipherSuiteName: string | undefined;
  readonly clientRandom: Uint8Array | undefined;
  readonly serverRandom: Uint8Array | undefined;
  readonly serverName: string | undefined;
  readonly alpnOffered: readonly string[];
  /** Selected protocol: from the ServerHello (TLS 1.2) or EncryptedExtensions (TLS 1.3, once decrypted). */
  readonly alpn: string | undefined;
  readonly supportedVersions: readonly number[];
  readonly keyShareGroups: readonly number[];
  readonly helloRetryRequest: boolean;
  /** TLS 1.3 PSK accepted, or TLS 1.2 abbreviated handshake. */
  readonly resumed: boolean;
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  readonly earlyDataOffered: boolean;
  readonly earlyDataAccepted: boolean;
}

export interface TlsKeyRequest {
  readonly clientRandom: Uint8Array;
  readonly labels: readonly KeyLogLabel[];
}

export interface TlsDirectionStats {
  /** Bytes pushed. */
  bytes: number;
  records: number;
  recordsDecrypted: number;
  applicationRecords: number;
  applicationBytes: number;
  handshakeMessages: number;
  changeCipherSpecs: number;
  alerts: number;
  keyUpdates: number;
  newSessionTickets: number;
  /** Records skipped because their secret is absent (0-RTT data, or handshake records when only the
   * application secrets are logged). */
  skippedRecords: number;
  /** Plaintext records of a type that does not belong there (e.g. unencrypted application data in TLS 1.2). */
  unexpectedRecords: number;
  /** Bytes pushed after the direction stopped, or dropped from its queue when it stopped. */
  ignoredBytes: number;
  /** Bytes of an incomplete record dropped at a gap or at finish. */
  truncatedBytes: number;
  queuedBytes: number;
  maxQueuedBytes: number;
  integrityFailures: Record<IntegrityFailure, number>;
}

export interface TlsSessionStats {
  readonly directions: readonly [TlsDirectionStats, TlsDirectionStats];
  keyLookups: number;
  bufferOverflows: number;
  /**
   * Candidate secret sets (a client random logged twice with different secrets) whose keys did not
   * authenticate the record they were tried on; the next candidate was tried.
   */
  candidatesRejected: number;
}
