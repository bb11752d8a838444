/** Typed errors of the traffic simulator. */

export const SimulationErrorCode = {
  /** The options given to `runSimulation` are out of range or inconsistent. */
  InvalidOptions: "invalid-options",
  /** A simulated connection failed or did not behave as planned (a bug here or in the platform). */
  ConnectionFailed: "connection-failed",
  /** A connection did not finish within its real-time budget. */
  ConnectionTimeout: "connection-timeout",
  /** The two ends of a connection disagree about the bytes exchanged (a relay or metering bug). */
  ConsistencyViolation: "consistency-violation",
} as const;
export type SimulationErrorCode = (typeof SimulationErrorCode)[keyof typeof SimulationErrorCode];

export class SimulationError extends Error {
  override readonly name: string = "SimulationError";
  constructor(
    readonly code: SimulationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class InvalidSimulationOptionsError extends SimulationError {
  override readonly name = "InvalidSimulationOptionsError";
  constructor(
    readonly option: string,
    detail: string,
  ) {
    super(SimulationErrorCode.InvalidOptions, `simulation option "${option}": ${detail}`);
  }
}

/** One simulated connection failed; `connectionIndex` is its index in the plan and manifest. */
export class ConnectionFailedError extends SimulationError {
  override readonly name = "ConnectionFailedError";
  constructor(
    readonly connectionIndex: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(SimulationErrorCode.ConnectionFailed, `connection #${connectionIndex}: ${detail}`, options);
  }
}

export class ConnectionTimeoutError extends SimulationError {
  override readonly name = "ConnectionTimeoutError";
  constructor(
    readonly connectionIndex: number,
    readonly timeoutMs: number,
  ) {
    super(
      SimulationErrorCode.ConnectionTimeout,
      `connection #${connectionIndex} did not finish within ${timeoutMs} ms`,
    );
  }
}

export class ConsistencyViolationError extends SimulationError {
  override readonly name = "ConsistencyViolationError";
  constructor(
    readonly connectionIndex: number,
    detail: string,
  ) {
    super(SimulationErrorCode.ConsistencyViolation, `connection #${connectionIndex}: ${detail}`);
  }
}

export function isSimulationError(err: unknown): err is SimulationError {
  return err instanceof SimulationError;
}
