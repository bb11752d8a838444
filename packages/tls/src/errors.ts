/**
 * Typed errors of the TLS package. The decoder itself never throws on bad input (it counts and reports);
 * these errors are for invalid use of the API, such as an out-of-range option. No error message ever carries
 * key material.
 */

export const TlsErrorCode = {
  InvalidOption: "invalid-option",
  InvalidArgument: "invalid-argument",
} as const;
export type TlsErrorCode = (typeof TlsErrorCode)[keyof typeof TlsErrorCode];

export class TlsError extends Error {
  override readonly name: string = "TlsError";
  constructor(
    readonly code: TlsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An option passed to a factory is out of range or of the wrong kind. */
export class TlsOptionError extends TlsError {
  override readonly name = "TlsOptionError";
  constructor(
    readonly option: string,
    detail: string,
  ) {
    super(TlsErrorCode.InvalidOption, `invalid option ${option}: ${detail}`);
  }
}

/** An argument of a call is invalid (for example a direction other than 0 or 1). */
export class TlsArgumentError extends TlsError {
  override readonly name = "TlsArgumentError";
  constructor(
    readonly argument: string,
    detail: string,
  ) {
    super(TlsErrorCode.InvalidArgument, `invalid argument ${argument}: ${detail}`);
  }
}

export function isTlsError(err: unknown): err is TlsError {
  return err instanceof TlsError;
}
