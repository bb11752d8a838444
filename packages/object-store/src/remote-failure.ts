/**
 * The classification every remote backend shares: which failures another attempt may cure (throttling,
 * 5xx, a connection reset or a call that timed out) and which errors name them. A backend maps its SDK's
 * own error codes (bad credentials, missing bucket, permission) first, and hands the rest here.
 */
import {
  ObjectStoreErrorCode,
  RemoteStoreError,
  type StoreErrorContext,
  StoreTimeoutError,
  StoreUnavailableError,
  StoreUnreachableError,
} from "./errors.js";
import type { CallFailure } from "./retry.js";

/** Socket errors after which a new connection may work (the server or a proxy dropped this one). */
const TRANSIENT_NETWORK = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EAI_AGAIN",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
  "ERR_HTTP2_STREAM_ERROR",
]);
/** Socket errors that say the endpoint is not there (yet): retried a few times, then "unreachable". */
const UNREACHABLE_NETWORK = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND"]);

/** The socket-level code of an error or of one of its causes (SDKs wrap them differently). */
export function networkCodeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (TRANSIENT_NETWORK.has(code) || UNREACHABLE_NETWORK.has(code)))
      return code;
    const message = (e as { message?: unknown }).message;
    if (typeof message === "string") {
      if (/socket hang up|premature close|other side closed|^aborted$/i.test(message)) return "ECONNRESET";
      const m = /\b(ECONNRESET|EPIPE|ETIMEDOUT|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN)\b/.exec(
        message,
      );
      if (m) return m[1];
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** HTTP statuses worth another attempt: throttling and server errors. */
export function isRetryableStatus(status: number | undefined): boolean {
  return status === 408 || status === 429 || (status !== undefined && status >= 500 && status <= 599);
}

/**
 * The shared part of a classification: a timeout, a network failure, a throttling or server status;
 * otherwise a non-retryable error with the backend's own detail.
 */
export function classifyCommonFailure(
  err: unknown,
  timedOut: boolean,
  context: StoreErrorContext,
  info: {
    readonly status?: number | undefined;
    readonly code?: string | undefined;
    readonly timeoutMs: number;
  },
): CallFailure {
  if (timedOut)
    return { retryable: true, error: new StoreTimeoutError(context, info.timeoutMs, { cause: err }) };
  const network = networkCodeOf(err);
  if (network && UNREACHABLE_NETWORK.has(network))
    return {
      retryable: network !== "ENOTFOUND",
      error: new StoreUnreachableError(context, network, { cause: err }),
    };
  if (network)
    return {
      retryable: true,
      error: new StoreUnavailableError(context, `connection broken (${network}), retries spent`, {
        cause: err,
      }),
    };
  const what = [info.status === undefined ? undefined : `HTTP ${info.status}`, info.code]
    .filter(Boolean)
    .join(" ");
  if (
    isRetryableStatus(info.status) ||
    /^(SlowDown|Throttl|ServerBusy|InternalError|ServiceUnavailable|RequestTimeout)/i.test(info.code ?? "")
  )
    return {
      retryable: true,
      error: new StoreUnavailableError(context, `the store kept failing (${what}), retries spent`, {
        cause: err,
      }),
    };
  const message = err instanceof Error ? err.message : String(err);
  return {
    retryable: false,
    error: new RemoteStoreError(
      ObjectStoreErrorCode.Unavailable,
      context,
      `the store refused the call (${what || message})`,
      { cause: err },
    ),
  };
}
