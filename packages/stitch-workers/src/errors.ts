/**
 * Errors of the worker threads, in the shape of @cloudtap/tap-format's, with a category for the gRPC
 * boundary: a worker that fails or exits is the process's fault, not the input's (input damage is a
 * problem in the run report, reported by the worker that saw it).
 */
export const StitchWorkersErrorCode = {
  /** A worker thread threw, failed to start, or exited before its shard was done. */
  WorkerFailed: "worker-failed",
  /** The thread of a store opened with `openStoreOnThread` failed to start, exited, or was closed. */
  StoreThreadFailed: "store-thread-failed",
} as const;
export type StitchWorkersErrorCode = (typeof StitchWorkersErrorCode)[keyof typeof StitchWorkersErrorCode];

export class StitchWorkerError extends Error {
  override readonly name = "StitchWorkerError";
  readonly code = StitchWorkersErrorCode.WorkerFailed;
  readonly category = "internal";
  constructor(
    readonly shard: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`stitch worker ${shard}: ${detail}`, options);
  }
}

export function isStitchWorkerError(err: unknown): err is StitchWorkerError {
  return err instanceof StitchWorkerError;
}

export class StoreThreadError extends Error {
  override readonly name = "StoreThreadError";
  readonly code = StitchWorkersErrorCode.StoreThreadFailed;
  readonly category = "internal";
  constructor(
    /** The store, as its URL names it (credentials removed). */
    readonly store: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`store thread of ${store}: ${detail}`, options);
  }
}
