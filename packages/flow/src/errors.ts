/**
 * Errors of the flow package, in the shape of @cloudtap/tap-format's: a code table, named subclasses, and a
 * category that the gRPC boundary (@cloudtap/rpc `toStatus`) maps to a status code in one place.
 */
export const FlowErrorCode = {
  /** A flow filter rule or match condition that does not parse. */
  BadRule: "bad-rule",
} as const;
export type FlowErrorCode = (typeof FlowErrorCode)[keyof typeof FlowErrorCode];

export class FlowError extends Error {
  override readonly name: string = "FlowError";
  /** The caller's input is at fault. */
  readonly category = "bad-input";
  constructor(
    readonly code: FlowErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A match condition ("port=443,user=*@example.com") that does not parse; the message says which part. */
export class FlowMatchSyntaxError extends FlowError {
  override readonly name = "FlowMatchSyntaxError";
  constructor(message: string) {
    super(FlowErrorCode.BadRule, message);
  }
}

/** A filter rule ("accept ...", "reject ...") that does not parse. */
export class FlowFilterSyntaxError extends FlowError {
  override readonly name = "FlowFilterSyntaxError";
  constructor(
    readonly rule: string,
    detail: string,
  ) {
    super(FlowErrorCode.BadRule, `bad filter rule "${rule}": ${detail}`);
  }
}

export function isFlowError(err: unknown): err is FlowError {
  return err instanceof FlowError;
}
