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
  /** A flow the export policy refuses: an attribute value holds a control character (a newline, say). */
  RefusedAttribute: "refused-attribute",
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

/**
 * Why the export policy refused a flow before reading its rules: `attribute` names the attribute whose value
 * holds a control character (the value itself is never in the message). The flow is exported nowhere.
 */
export class RefusedAttributeError extends EgressError {
  override readonly name = "RefusedAttributeError";
  constructor(readonly attribute: string) {
    super(
      EgressErrorCode.RefusedAttribute,
      `export policy: the flow's ${JSON.stringify(attribute)} attribute holds a control character: not exported`,
    );
  }
}

export function isEgressError(err: unknown): err is EgressError {
  return err instanceof EgressError;
}
