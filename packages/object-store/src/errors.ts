export const ObjectStoreErrorCode = {
  NotFound: "not-found",
  InvalidKey: "invalid-key",
  UnsupportedUrl: "unsupported-url",
  Unavailable: "unavailable",
} as const;
export type ObjectStoreErrorCode = (typeof ObjectStoreErrorCode)[keyof typeof ObjectStoreErrorCode];

export class ObjectStoreError extends Error {
  override readonly name: string = "ObjectStoreError";
  constructor(
    readonly code: ObjectStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class ObjectNotFoundError extends ObjectStoreError {
  override readonly name = "ObjectNotFoundError";
  constructor(
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(ObjectStoreErrorCode.NotFound, `object not found: ${key}`, options);
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

export function isObjectNotFound(err: unknown): err is ObjectNotFoundError {
  return err instanceof ObjectNotFoundError;
}
