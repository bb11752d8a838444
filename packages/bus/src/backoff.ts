/** Exponential backoff with full jitter, and an abortable sleep: shared by connecting and publishing. */

export interface BackoffPolicy {
  /** First delay. Default 100 ms. */
  readonly initialMs?: number;
  /** Largest delay. Default 5 s. */
  readonly maxMs?: number;
}

/** The delay before retry number `attempt` (0-based): random in [d/2, d], d = initial * 2^attempt, capped. */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy = {}): number {
  const initial = policy.initialMs ?? 100;
  const max = policy.maxMs ?? 5000;
  const d = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return d / 2 + Math.random() * (d / 2);
}

/** Resolves after `ms`, or rejects with the signal's reason when it is aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
