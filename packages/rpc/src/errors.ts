/**
 * The error categories of the whole project and their gRPC status codes, mapped in one place.
 *
 * A package's errors say what went wrong in its own terms (a `code`) and which category that is (a
 * `category` property holding one of `ErrorCategory`). At the gRPC boundary `toStatus(err)` turns any thrown
 * value into a status: the code from the category, and a message that is the error's own message only,
 * never its cause chain (causes go to logs). An error without a category is `internal`, and its message does
 * not go on the wire at all, since nothing says it is safe to show. On the client side `fromStatus` turns a
 * grpc-js `ServiceError` back into an `RpcError` with a category.
 */
import { status as GrpcStatus, Metadata, type ServiceError } from "@grpc/grpc-js";

export const ErrorCategory = {
  /** The request is malformed or names something invalid: the caller must change it. */
  BadInput: "bad-input",
  NotFound: "not-found",
  /** A dependency (store, bus, peer) is down or refused; a retry may succeed. */
  Unavailable: "unavailable",
  /** The caller is known but not allowed. */
  PermissionDenied: "permission-denied",
  /** The caller could not be identified. */
  Unauthenticated: "unauthenticated",
  Deadline: "deadline",
  /** A cap was reached (waiters, bytes, in-flight batches). */
  ResourceExhausted: "resource-exhausted",
  /** A bug or an unexpected condition. */
  Internal: "internal",
  Cancelled: "cancelled",
} as const;
export type ErrorCategory = (typeof ErrorCategory)[keyof typeof ErrorCategory];

const CATEGORIES: ReadonlySet<string> = new Set(Object.values(ErrorCategory));

export function isErrorCategory(value: unknown): value is ErrorCategory {
  return typeof value === "string" && CATEGORIES.has(value);
}

const STATUS_OF_CATEGORY: Readonly<Record<ErrorCategory, GrpcStatus>> = {
  "bad-input": GrpcStatus.INVALID_ARGUMENT,
  "not-found": GrpcStatus.NOT_FOUND,
  unavailable: GrpcStatus.UNAVAILABLE,
  "permission-denied": GrpcStatus.PERMISSION_DENIED,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  deadline: GrpcStatus.DEADLINE_EXCEEDED,
  "resource-exhausted": GrpcStatus.RESOURCE_EXHAUSTED,
  internal: GrpcStatus.INTERNAL,
  cancelled: GrpcStatus.CANCELLED,
};

function categoryOfStatus(code: GrpcStatus): ErrorCategory {
  switch (code) {
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.OUT_OF_RANGE:
    case GrpcStatus.ALREADY_EXISTS:
      return ErrorCategory.BadInput;
    case GrpcStatus.NOT_FOUND:
      return ErrorCategory.NotFound;
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.ABORTED:
      return ErrorCategory.Unavailable;
    case GrpcStatus.PERMISSION_DENIED:
      return ErrorCategory.PermissionDenied;
    case GrpcStatus.UNAUTHENTICATED:
      return ErrorCategory.Unauthenticated;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return ErrorCategory.Deadline;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return ErrorCategory.ResourceExhausted;
    case GrpcStatus.CANCELLED:
      return ErrorCategory.Cancelled;
    default:
      return ErrorCategory.Internal;
  }
}

/** An error that crossed (or is about to cross) a gRPC boundary: a category and its status code. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly code: GrpcStatus;
  /** Trailing metadata received with the status (client side). */
  readonly metadata: Metadata;
  constructor(
    readonly category: ErrorCategory,
    message: string,
    options: { cause?: unknown; code?: GrpcStatus; metadata?: Metadata } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? STATUS_OF_CATEGORY[category];
    this.metadata = options.metadata ?? new Metadata();
  }
}

export function isRpcError(err: unknown): err is RpcError {
  return err instanceof RpcError;
}

/** The category of any thrown value: its `category` property when valid, else by well-known names, else internal. */
export function errorCategory(err: unknown): ErrorCategory {
  if (typeof err === "object" && err !== null) {
    const category = (err as { category?: unknown }).category;
    if (isErrorCategory(category)) return category;
    const name = (err as { name?: unknown }).name;
    if (name === "AbortError") return ErrorCategory.Cancelled;
    if (name === "TimeoutError") return ErrorCategory.Deadline;
  }
  return ErrorCategory.Internal;
}

export interface WireStatus {
  readonly code: GrpcStatus;
  /** The message for the wire: the error's own message, no cause. */
  readonly details: string;
  readonly category: ErrorCategory;
}

/** Message used on the wire for an error that has no category (its real message goes to the logs). */
export const INTERNAL_ERROR_MESSAGE = "internal error";

/** Maps a thrown value to the status sent to the caller. The only place where that mapping happens. */
export function toStatus(err: unknown): WireStatus {
  if (err instanceof RpcError) return { code: err.code, details: err.message, category: err.category };
  const category = errorCategory(err);
  const hasOwnCategory =
    typeof err === "object" && err !== null && isErrorCategory((err as { category?: unknown }).category);
  const message =
    err instanceof Error && (hasOwnCategory || category !== ErrorCategory.Internal) ? err.message : "";
  return {
    code: STATUS_OF_CATEGORY[category],
    details: message || INTERNAL_ERROR_MESSAGE,
    category,
  };
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === "number" && "details" in err;
}

/** Turns what a grpc-js client call failed with into an `RpcError` (anything else becomes an internal one). */
export function fromStatus(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (isServiceError(err)) {
    return new RpcError(categoryOfStatus(err.code), err.details || err.message, {
      code: err.code,
      metadata: err.metadata ?? new Metadata(),
      cause: err,
    });
  }
  const category = errorCategory(err);
  return new RpcError(category, err instanceof Error ? err.message : String(err), { cause: err });
}
