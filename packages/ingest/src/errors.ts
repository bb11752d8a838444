import type { IngestSummary } from "./summary.js";

export const IngestErrorCode = {
  /** The capture could not be read to its end; `cause` is the `PcapFormatError` with the byte offset. */
  CaptureUnreadable: "capture-unreadable",
  /** An option is out of range; the message names it. */
  InvalidOption: "invalid-option",
} as const;
export type IngestErrorCode = (typeof IngestErrorCode)[keyof typeof IngestErrorCode];

export class IngestError extends Error {
  override readonly name = "IngestError";
  readonly code: IngestErrorCode;
  /**
   * For `capture-unreadable`: what was ingested from the packets before the error. Those records are in
   * the store (connections still open were closed with reason tapper-stop).
   */
  readonly summary: IngestSummary | undefined;

  constructor(code: IngestErrorCode, message: string, options?: ErrorOptions & { summary?: IngestSummary }) {
    super(message, options);
    this.code = code;
    this.summary = options?.summary;
  }
}

export function isIngestError(err: unknown): err is IngestError {
  return err instanceof IngestError;
}
