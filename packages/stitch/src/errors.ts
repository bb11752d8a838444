/**
 * Errors of the stitch package, in the shape of @cloudtap/tap-format's: a code table, named subclasses, and a
 * category that the gRPC boundary (@cloudtap/rpc `toStatus`) maps to a status code in one place. Damage in the
 * input is not an error here: it is a problem in the run report, and the run goes on.
 */
export const StitchErrorCode = {
  /** Stitcher settings that cannot work (an MTU too small for its encapsulation, TLS without a key source). */
  BadSettings: "bad-settings",
} as const;
export type StitchErrorCode = (typeof StitchErrorCode)[keyof typeof StitchErrorCode];

export class StitchError extends Error {
  override readonly name: string = "StitchError";
  constructor(
    readonly code: StitchErrorCode,
    readonly category: "bad-input" | "internal",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Settings that cannot work; the message names the setting. */
export class StitchSettingsError extends StitchError {
  override readonly name = "StitchSettingsError";
  constructor(message: string) {
    super(StitchErrorCode.BadSettings, "bad-input", message);
  }
}

export function isStitchError(err: unknown): err is StitchError {
  return err instanceof StitchError;
}
