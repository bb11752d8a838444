/**
 * Retries for remote stores: exponential backoff with full jitter, bounded in attempts and in total time,
 * and a timeout on every call. A backend says which failures are worth another try (throttling, 5xx, a
 * reset connection, a call that timed out) through `classify`, and what error to throw when they are not,
 * or when the budget is spent.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included (default 6). */
  readonly attempts: number;
  /** Backoff before the second attempt; doubled each time, then jittered (default 100 ms). */
  readonly baseDelayMs: number;
  /** Cap of one backoff (default 5 s). */
  readonly maxDelayMs: number;
  /** No new attempt starts once this much time has passed since the first (default 60 s). */
  readonly budgetMs: number;
  /**
   * Timeout of one call: the whole call for small ones (list, stat, delete, a part's upload), the time to
   * the first byte and between two bytes for a read (default 30 s).
   */
  readonly callTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  attempts: 6,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  budgetMs: 60_000,
  callTimeoutMs: 30_000,
};

/** What a backend makes of one failed call. */
export interface CallFailure {
  /** Another attempt may succeed (throttling, a 5xx, a reset connection, a timeout). */
  readonly retryable: boolean;
  /** The error to throw when no attempt is left (or at once when not retryable). */
  readonly error: Error;
}

/** `timedOut`: the call's own timeout fired (its signal was aborted for that reason). */
export type FailureClassifier = (err: unknown, timedOut: boolean) => CallFailure;

export interface RetryContext {
  readonly policy: RetryPolicy;
  readonly classify: FailureClassifier;
  /** The caller's signal: when it aborts, the call stops at once with its reason. */
  readonly signal?: AbortSignal | undefined;
  /** Told of each retry (for counters and tests). */
  readonly onRetry?: ((attempt: number, failure: CallFailure) => void) | undefined;
  /** Random source in [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number;
}

/** The backoff before attempt `attempt + 1` (attempt counts from 1): full jitter under an exponential cap. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * cap);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A signal aborted by the caller's signal or by a timer; `arm` restarts the timer, `disarm` stops it. */
export class CallDeadline {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onParentAbort = () => this.controller.abort(this.parent?.reason);
  timedOut = false;
  constructor(
    private readonly timeoutMs: number,
    private readonly parent?: AbortSignal,
  ) {
    if (parent?.aborted) this.controller.abort(parent.reason);
    else parent?.addEventListener("abort", this.onParentAbort, { once: true });
    this.arm();
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new Error(`call timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);
  }
  disarm(): void {
    clearTimeout(this.timer);
    this.parent?.removeEventListener("abort", this.onParentAbort);
  }
}

/**
 * Runs `call` until it succeeds, a failure is not retryable, the attempts are spent, or the time budget is:
 * then throws the classified error. The caller's abort is thrown as is, never retried.
 */
export async function withRetries<T>(
  call: (signal: AbortSignal, attempt: number) => Promise<T>,
  context: RetryContext,
): Promise<T> {
  const { policy } = context;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    context.signal?.throwIfAborted();
    const deadline = new CallDeadline(policy.callTimeoutMs, context.signal);
    try {
      return await call(deadline.signal, attempt);
    } catch (err) {
      if (context.signal?.aborted) throw context.signal.reason;
      const failure = context.classify(err, deadline.timedOut);
      const delay = backoffMs(policy, attempt, context.random);
      if (!failure.retryable || attempt >= policy.attempts || Date.now() - started + delay > policy.budgetMs)
        throw failure.error;
      context.onRetry?.(attempt, failure);
      await sleep(delay, context.signal);
    } finally {
      deadline.disarm();
    }
  }
}

/** One opened (ranged) read: its body, and what identifies the object's version for a resumed read. */
export interface OpenedRead {
  readonly body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** Bytes this response will carry, when the store said (a shorter body is a broken read). */
  readonly length?: number | undefined;
  /**
   * The object's version (ETag, generation): a resumed read asks for this one, or fails. Read when the
   * body breaks, so a backend that learns it from the response headers may fill it in late.
   */
  readonly version?: string | undefined;
}

export interface ResumableReadOptions extends RetryContext {
  readonly start: number;
  readonly end?: number | undefined;
  /**
   * Opens the object from `start` (to `end`, exclusive, when given), of `version` when given; aborts when
   * `signal` does (the body too).
   */
  readonly open: (
    range: { readonly start: number; readonly end?: number | undefined },
    version: string | undefined,
    signal: AbortSignal,
  ) => Promise<OpenedRead>;
  /** Told of each resumption, with the byte position it resumes from. */
  readonly onResume?: ((position: number) => void) | undefined;
}

/**
 * A streamed read that survives a broken connection: when the body fails (or ends short) mid-stream, it is
 * opened again with a ranged read from the last byte received, of the same object version, with the same
 * backoff and bounds as `withRetries`. The timeout applies to the first byte and to every gap between bytes.
 */
export async function* resumableRead(options: ResumableReadOptions): AsyncGenerator<Uint8Array> {
  const { policy } = options;
  // The time budget bounds one streak of failures: a long read that keeps making progress is not cut.
  let streakStarted = Date.now();
  let position = options.start;
  let version: string | undefined;
  let failures = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const deadline = new CallDeadline(policy.callTimeoutMs, options.signal);
    let received = 0;
    let expected: number | undefined;
    let current: OpenedRead | undefined;
    try {
      const opened = await options.open({ start: position, end: options.end }, version, deadline.signal);
      current = opened;
      expected = opened.length;
      deadline.arm();
      for await (const chunk of opened.body) {
        deadline.arm();
        if (chunk.length === 0) continue;
        received += chunk.length;
        position += chunk.length;
        yield chunk;
      }
      // A short body is a connection cut cleanly (a proxy, a server restart): the code makes every
      // backend's classifier retry it as it does a reset.
      if (expected !== undefined && received < expected)
        throw Object.assign(new Error(`the body ended after ${received} of ${expected} bytes`), {
          code: "ERR_STREAM_PREMATURE_CLOSE",
        });
      return;
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      version ??= current?.version;
      const failure = options.classify(err, deadline.timedOut);
      // A read that made progress starts its count of attempts afresh: only failures in a row are bounded.
      if (received > 0) {
        failures = 0;
        streakStarted = Date.now();
      }
      failures++;
      const delay = backoffMs(policy, failures, options.random);
      if (
        !failure.retryable ||
        failures >= policy.attempts ||
        Date.now() - streakStarted + delay > policy.budgetMs
      )
        throw failure.error;
      options.onRetry?.(failures, failure);
      options.onResume?.(position);
      await sleep(delay, options.signal);
    } finally {
      deadline.disarm();
    }
  }
}
