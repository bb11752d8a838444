/**
 * Typed errors of the NATS wiring. A full stream is an error the caller sees and decides on (the fetcher
 * waits and retries: never a silent drop); timeouts and "no responders" are retried inside `publishWithId`
 * and surface as PublishFailedError only when the retries run out or the caller aborts.
 */

export const BusErrorCode = {
  StreamFull: "stream-full",
  PublishFailed: "publish-failed",
  InvalidName: "invalid-name",
  Aborted: "aborted",
  RetentionMismatch: "retention-mismatch",
} as const;
export type BusErrorCode = (typeof BusErrorCode)[keyof typeof BusErrorCode];

/** How a boundary (gRPC status, exit code) should treat the error. */
export const BusErrorCategory = { Unavailable: "unavailable", InvalidArgument: "invalid-argument" } as const;
export type BusErrorCategory = (typeof BusErrorCategory)[keyof typeof BusErrorCategory];

export class BusError extends Error {
  override readonly name: string = "BusError";
  constructor(
    readonly code: BusErrorCode,
    readonly category: BusErrorCategory,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The stream refused the message because it reached its byte or message limit (`discard: new`). */
export class StreamFullError extends BusError {
  override readonly name = "StreamFullError";
  constructor(
    readonly subject: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      BusErrorCode.StreamFull,
      BusErrorCategory.Unavailable,
      `stream full for ${subject}: ${detail}`,
      options,
    );
  }
}

/** A publish was not acknowledged after its retries (timeouts, no responders) or failed for another reason. */
export class PublishFailedError extends BusError {
  override readonly name = "PublishFailedError";
  constructor(
    readonly subject: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : "";
    super(
      BusErrorCode.PublishFailed,
      BusErrorCategory.Unavailable,
      `publish to ${subject} failed after ${attempts} attempt(s)${cause}`,
      options,
    );
  }
}

/** A stream, consumer, bucket or subject token is not a valid NATS name. */
export class InvalidBusNameError extends BusError {
  override readonly name = "InvalidBusNameError";
  constructor(
    readonly what: string,
    readonly value: string,
  ) {
    super(BusErrorCode.InvalidName, BusErrorCategory.InvalidArgument, `invalid ${what} "${value}"`);
  }
}

/** The caller's signal was aborted while waiting on the bus. */
export class BusAbortedError extends BusError {
  override readonly name = "BusAbortedError";
  constructor(what: string, options?: { cause?: unknown }) {
    super(BusErrorCode.Aborted, BusErrorCategory.Unavailable, `${what}: aborted`, options);
  }
}

export function isStreamFull(err: unknown): err is StreamFullError {
  return err instanceof StreamFullError;
}

export function isBusError(err: unknown): err is BusError {
  return err instanceof BusError;
}

/**
 * A stream exists with another retention than the mesh needs, and still holds data a consumer has not
 * consumed: it is not dropped. Drain it with the version that made it, or remove it (`nats stream rm`).
 */
export class StreamRetentionMismatchError extends BusError {
  override readonly name = "StreamRetentionMismatchError";
  constructor(
    readonly stream: string,
    readonly existing: string,
    readonly wanted: string,
    /** The consumers with data left, as "name (N pending, M unacked)". */
    readonly busy: readonly string[],
  ) {
    super(
      BusErrorCode.RetentionMismatch,
      BusErrorCategory.Unavailable,
      `stream ${stream} has ${existing} retention, the mesh needs ${wanted}; it cannot be changed in place ` +
        `and is not dropped while its consumers have data left: ${busy.join(", ")} (let them finish with ` +
        "the version that made it, or remove the stream)",
    );
  }
}
