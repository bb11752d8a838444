/** Why an egress configuration or operation failed. */
export const EgressErrorCode = {
  /** An export policy (file or flags) that does not validate: the message names the field. */
  BadPolicy: "bad-policy",
  /** A target address, port, VNI or MTU out of range. */
  BadTarget: "bad-target",
  /** An option of a sink (rotation, buffer caps, GENEVE options) out of range. */
  BadOption: "bad-option",
  /** A sink used against its contract (a chunk it did not produce, a write after close). */
  Misuse: "misuse",
  /** A socket or file could not be opened (the cause says why). */
  OpenFailed: "open-failed",
} as const;
export type EgressErrorCode = (typeof EgressErrorCode)[keyof typeof EgressErrorCode];

export class EgressError extends Error {
  override readonly name: string = "EgressError";
  constructor(
    readonly code: EgressErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A policy that does not validate; `path` names the field ("targets[1].vni", "rules[0].match"). */
export class ExportPolicyError extends EgressError {
  override readonly name = "ExportPolicyError";
  constructor(
    readonly path: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(EgressErrorCode.BadPolicy, `export policy: ${path}: ${detail}`, options);
  }
}

export function isEgressError(err: unknown): err is EgressError {
  return err instanceof EgressError;
}
