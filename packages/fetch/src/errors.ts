/**
 * Errors of the fetch side, in the shape of @cloudtap/tap-format's: a code table, named subclasses, the
 * object's key in the message, `cause` kept, and a category that the gRPC boundary maps to a status code.
 */
export const FetchErrorCode = {
  /** A key log or blob could not be read from its store. */
  ReadFailed: "read-failed",
  /** A gzip object that does not inflate (truncated, corrupt). */
  Decompress: "decompress-failed",
  /** An object that inflates past the configured cap (a decompression bomb, or a cap set too low). */
  TooLarge: "too-large",
} as const;
export type FetchErrorCode = (typeof FetchErrorCode)[keyof typeof FetchErrorCode];

export class FetchError extends Error {
  override name = "FetchError";
  /** Bad input: the object is at fault, not the service. */
  readonly category = "bad-input";
  constructor(
    readonly code: FetchErrorCode,
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${key}: ${message}`, options);
  }
}

export class ObjectTooLargeError extends FetchError {
  override name = "ObjectTooLargeError";
  constructor(
    key: string,
    readonly limitBytes: number,
  ) {
    super(FetchErrorCode.TooLarge, key, `inflates past the ${limitBytes}-byte cap`);
  }
}

export function isFetchError(err: unknown): err is FetchError {
  return err instanceof FetchError;
}
