/**
 * Publishing with a message id, so a retry (ours, or a restarted publisher's) is stored once within the
 * stream's duplicate window. Timeouts and "no responders" (the stream's leader not ready, the server
 * restarting) are retried with backoff; a full stream is not retried here: it throws StreamFullError and
 * the caller decides (wait and retry, count it), so nothing is ever dropped silently.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { type MsgHdrs, NoRespondersError, TimeoutError } from "@nats-io/transport-node";
import { type BackoffPolicy, backoffDelayMs, sleep } from "./backoff.js";
import { BusAbortedError, PublishFailedError, StreamFullError } from "./errors.js";

export interface PublishOptions {
  readonly msgId: string;
  readonly headers?: MsgHdrs;
  /** Attempts in all, for retryable failures. Default 10. */
  readonly attempts?: number;
  /** Wait for each ack; default the JetStream client's timeout. */
  readonly timeoutMs?: number;
  readonly backoff?: BackoffPolicy;
  readonly signal?: AbortSignal;
}

export interface PublishResult {
  readonly stream: string;
  readonly seq: number;
  /** The stream already held a message with this id: nothing new was stored. */
  readonly duplicate: boolean;
  readonly attempts: number;
}

export const DEFAULT_PUBLISH_ATTEMPTS = 10;

// JetStream API codes (server errors.json): 10077 stream store failed (maximum bytes / messages exceeded
// under `discard: new`), 10047 insufficient resources (the server's own JetStream limits).
const STREAM_FULL_CODES = new Set([10077, 10047]);

function isRetryable(err: unknown): boolean {
  if (err instanceof TimeoutError || err instanceof NoRespondersError) return true;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof TimeoutError || cause instanceof NoRespondersError) return true;
  // The connection is reconnecting: requests fail until it is back.
  const name = (err as { name?: string }).name;
  return name === "ConnectionError" || name === "RequestError";
}

function streamFullDetail(err: unknown): string | undefined {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === "number" && STREAM_FULL_CODES.has(code)) return message;
  return /maximum (bytes|messages) exceeded|insufficient resources/i.test(message) ? message : undefined;
}

export async function publishWithId(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array,
  options: PublishOptions,
): Promise<PublishResult> {
  const attempts = options.attempts ?? DEFAULT_PUBLISH_ATTEMPTS;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (options.signal?.aborted)
      throw new BusAbortedError(`publish to ${subject}`, { cause: options.signal.reason });
    try {
      const ack = await js.publish(subject, payload, {
        msgID: options.msgId,
        retries: 1,
        ...(options.headers ? { headers: options.headers } : {}),
        ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
      });
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate, attempts: attempt };
    } catch (err) {
      const full = streamFullDetail(err);
      if (full !== undefined) throw new StreamFullError(subject, full, { cause: err });
      if (!isRetryable(err)) throw new PublishFailedError(subject, attempt, { cause: err });
      last = err;
    }
    if (attempt < attempts) {
      try {
        await sleep(backoffDelayMs(attempt - 1, options.backoff), options.signal);
      } catch {
        throw new BusAbortedError(`publish to ${subject}`, { cause: last });
      }
    }
  }
  throw new PublishFailedError(subject, attempts, { cause: last });
}
