/**
 * Errors of the key vault, in the shape of @cloudtap/tap-format's: a code table, named subclasses, `cause`
 * kept, and a category that the gRPC boundary maps to a status code. No message ever holds key material.
 */
export const KeyVaultErrorCode = {
  /** A client random that is not 32 bytes / 64 hex digits. */
  BadClientRandom: "bad-client-random",
  /** The vault key is not 32 bytes. */
  BadVaultKey: "bad-vault-key",
  /** A sealed value that does not open (wrong key, tampered or truncated). */
  Unseal: "unseal-failed",
  /** The vault's backend failed (NATS down, bucket missing). */
  VaultUnavailable: "vault-unavailable",
  /** Too many WaitForKeys calls in flight. */
  TooManyWaiters: "too-many-waiters",
} as const;
export type KeyVaultErrorCode = (typeof KeyVaultErrorCode)[keyof typeof KeyVaultErrorCode];

const CATEGORY_OF_CODE = {
  "bad-client-random": "bad-input",
  "bad-vault-key": "bad-input",
  "unseal-failed": "internal",
  "vault-unavailable": "unavailable",
  "too-many-waiters": "resource-exhausted",
} as const satisfies Record<KeyVaultErrorCode, string>;

export class KeyVaultError extends Error {
  override readonly name: string = "KeyVaultError";
  readonly category: (typeof CATEGORY_OF_CODE)[KeyVaultErrorCode];
  constructor(
    readonly code: KeyVaultErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.category = CATEGORY_OF_CODE[code];
  }
}

export class BadClientRandomError extends KeyVaultError {
  override readonly name = "BadClientRandomError";
  constructor(length: number) {
    super(KeyVaultErrorCode.BadClientRandom, `a client random is 32 bytes, not ${length}`);
  }
}

export class UnsealError extends KeyVaultError {
  override readonly name = "UnsealError";
  constructor(what: string, options?: { cause?: unknown }) {
    super(KeyVaultErrorCode.Unseal, `sealed value does not open: ${what}`, options);
  }
}

export class VaultUnavailableError extends KeyVaultError {
  override readonly name = "VaultUnavailableError";
  constructor(operation: string, cause: unknown) {
    super(KeyVaultErrorCode.VaultUnavailable, `key vault ${operation} failed`, { cause });
  }
}

export class TooManyWaitersError extends KeyVaultError {
  override readonly name = "TooManyWaitersError";
  constructor(readonly maxWaiters: number) {
    super(KeyVaultErrorCode.TooManyWaiters, `too many key waits in flight (cap ${maxWaiters})`);
  }
}

export function isKeyVaultError(err: unknown): err is KeyVaultError {
  return err instanceof KeyVaultError;
}
