/**
 * Errors of the object stores, in the shape of @cloudtap/tap-format's: a code table, named subclasses,
 * `cause` kept, and a category that the gRPC boundary (@cloudtap/rpc `toStatus`) maps to a status code in
 * one place. A remote store's error names the store URL (credentials removed) and where its credentials
 * came from (a file's path, or the SDK's environment and default chain), never a secret.
 */
export const ObjectStoreErrorCode = {
  NotFound: "not-found",
  InvalidKey: "invalid-key",
  UnsupportedUrl: "unsupported-url",
  Unavailable: "unavailable",
  /** The store refused the credentials (unknown key, bad signature, expired token). */
  BadCredentials: "bad-credentials",
  /** The credentials are known but lack a permission (list, get, put, delete). */
  PermissionDenied: "permission-denied",
  /** The bucket or container does not exist. */
  MissingContainer: "missing-container",
  /** The endpoint does not answer (DNS, connection refused, TLS). */
  Unreachable: "unreachable",
  /** A call took longer than its timeout. */
  Timeout: "timeout",
  /** A credentials file that cannot be read or is not in a known format. */
  BadCredentialsFile: "bad-credentials-file",
  /** A write or delete on a store opened read-only (a source store). */
  ReadOnly: "read-only",
} as const;
export type ObjectStoreErrorCode = (typeof ObjectStoreErrorCode)[keyof typeof ObjectStoreErrorCode];

const CATEGORY_OF_CODE = {
  "not-found": "not-found",
  "invalid-key": "bad-input",
  "unsupported-url": "bad-input",
  unavailable: "unavailable",
  "bad-credentials": "unauthenticated",
  "permission-denied": "permission-denied",
  "missing-container": "not-found",
  unreachable: "unavailable",
  timeout: "deadline",
  "bad-credentials-file": "bad-input",
  "read-only": "permission-denied",
} as const satisfies Record<ObjectStoreErrorCode, string>;
export type ObjectStoreErrorCategory = (typeof CATEGORY_OF_CODE)[ObjectStoreErrorCode];

export class ObjectStoreError extends Error {
  override readonly name: string = "ObjectStoreError";
  /** What kind of failure this is for the gRPC boundary (`toStatus`). */
  readonly category: ObjectStoreErrorCategory;
  constructor(
    readonly code: ObjectStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.category = CATEGORY_OF_CODE[code];
  }
}

export class ObjectNotFoundError extends ObjectStoreError {
  override readonly name = "ObjectNotFoundError";
  constructor(
    readonly key: string,
    options?: { cause?: unknown; store?: string },
  ) {
    super(
      ObjectStoreErrorCode.NotFound,
      options?.store ? `object not found: ${key} in ${options.store}` : `object not found: ${key}`,
      options,
    );
  }
}

export class InvalidKeyError extends ObjectStoreError {
  override readonly name = "InvalidKeyError";
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(ObjectStoreErrorCode.InvalidKey, `invalid object key "${key}": ${reason}`);
  }
}

export class UnsupportedStoreUrlError extends ObjectStoreError {
  override readonly name = "UnsupportedStoreUrlError";
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(ObjectStoreErrorCode.UnsupportedUrl, `cannot open store "${url}": ${reason}`);
  }
}

/** Where a remote store's credentials came from, as errors name it: never the secret itself. */
export type CredentialsSource = { readonly file: string } | { readonly ambient: string };

export function describeCredentials(source: CredentialsSource): string {
  return "file" in source ? `credentials file ${source.file}` : `credentials from ${source.ambient}`;
}

/** What a remote store's error says about where it happened. */
export interface StoreErrorContext {
  /** The store URL, credentials removed. */
  readonly store: string;
  readonly credentials: CredentialsSource;
  /** The object key, for a call on one object. */
  readonly key?: string;
}

function where(c: StoreErrorContext): string {
  return `${c.store}${c.key === undefined ? "" : ` (object ${c.key})`}, ${describeCredentials(c.credentials)}`;
}

/** A remote store's failure, with the store URL and the credentials' source in its message. */
export class RemoteStoreError extends ObjectStoreError {
  override readonly name: string = "RemoteStoreError";
  readonly store: string;
  readonly key: string | undefined;
  constructor(
    code: ObjectStoreErrorCode,
    readonly context: StoreErrorContext,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(code, `${detail}: ${where(context)}`, options);
    this.store = context.store;
    this.key = context.key;
  }
}

export class BadCredentialsError extends RemoteStoreError {
  override readonly name = "BadCredentialsError";
  constructor(context: StoreErrorContext, detail: string, options?: { cause?: unknown }) {
    super(ObjectStoreErrorCode.BadCredentials, context, `credentials refused (${detail})`, options);
  }
}

/** The permissions a reader or writer needs, as named in a permission-denied error. */
export type StorePermission = "list" | "get" | "put" | "delete";

export class PermissionDeniedError extends RemoteStoreError {
  override readonly name = "PermissionDeniedError";
  constructor(
    context: StoreErrorContext,
    /** The permission the call needed. */
    readonly permission: StorePermission,
    /** The provider's own name of it, e.g. `s3:GetObject`. */
    readonly providerPermission: string,
    options?: { cause?: unknown },
  ) {
    super(
      ObjectStoreErrorCode.PermissionDenied,
      context,
      `permission denied: ${permission} (${providerPermission}) not granted`,
      options,
    );
  }
}

export class MissingContainerError extends RemoteStoreError {
  override readonly name = "MissingContainerError";
  constructor(
    context: StoreErrorContext,
    /** "bucket" or "container". */
    what: string,
    readonly container: string,
    options?: { cause?: unknown },
  ) {
    super(ObjectStoreErrorCode.MissingContainer, context, `no such ${what} "${container}"`, options);
  }
}

export class StoreUnreachableError extends RemoteStoreError {
  override readonly name = "StoreUnreachableError";
  constructor(context: StoreErrorContext, detail: string, options?: { cause?: unknown }) {
    super(ObjectStoreErrorCode.Unreachable, context, `endpoint unreachable (${detail})`, options);
  }
}

export class StoreTimeoutError extends RemoteStoreError {
  override readonly name = "StoreTimeoutError";
  constructor(
    context: StoreErrorContext,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(ObjectStoreErrorCode.Timeout, context, `no answer within ${timeoutMs} ms`, options);
  }
}

/** Throttling or a server error that outlasted the retries. */
export class StoreUnavailableError extends RemoteStoreError {
  override readonly name = "StoreUnavailableError";
  constructor(context: StoreErrorContext, detail: string, options?: { cause?: unknown }) {
    super(ObjectStoreErrorCode.Unavailable, context, detail, options);
  }
}

export class BadCredentialsFileError extends ObjectStoreError {
  override readonly name = "BadCredentialsFileError";
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(ObjectStoreErrorCode.BadCredentialsFile, `credentials file ${file}: ${detail}`, options);
  }
}

export function isObjectNotFound(err: unknown): err is ObjectNotFoundError {
  return err instanceof ObjectNotFoundError;
}

export function isObjectStoreError(err: unknown): err is ObjectStoreError {
  return err instanceof ObjectStoreError;
}
