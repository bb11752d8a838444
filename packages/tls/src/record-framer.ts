/**
 * Splits one direction's byte stream, arriving in arbitrary chunks, into TLS records. A record that lies
 * within one chunk is delivered as a view of that chunk (no copy; `owned` false: copy what you keep); a
 * record split across chunks is assembled into a buffer of its exact size (`owned` true).
 *
 * Header bytes are checked as soon as they arrive, so a stream that is not TLS is recognised from its first
 * byte where possible.
 */

export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
  Heartbeat: 24,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

/** TLSCiphertext.length may be at most 2^14 + 2048 (RFC 5246 section 6.2.3). */
export const MAX_RECORD_FRAGMENT_LENGTH = 16384 + 2048;

export const FramingProblem = {
  BadContentType: "bad-content-type",
  BadVersion: "bad-version",
  BadLength: "bad-length",
} as const;
export type FramingProblem = (typeof FramingProblem)[keyof typeof FramingProblem];

/** Receives one record; returns false to stop framing (the rest of the stream is then only counted). */
export type RecordSink = (type: number, version: number, fragment: Uint8Array, owned: boolean) => boolean;

/**
 * Checks the first `filled` bytes of a record header. Returns the problem, or undefined while they can still
 * be a header. Types 20-24; version 3.x with x at most 4 (SSL 3.0 to TLS 1.3 record versions); length
 * at most MAX_RECORD_FRAGMENT_LENGTH.
 */
export function checkRecordHeader(
  header: Uint8Array,
  offset: number,
  filled: number,
): FramingProblem | undefined {
  if (filled >= 1) {
    const type = header[offset]!;
    if (type < ContentType.ChangeCipherSpec || type > ContentType.Heartbeat)
      return FramingProblem.BadContentType;
  }
  if (filled >= 2 && header[offset + 1] !== 3) return FramingProblem.BadVersion;
  if (filled >= 3 && header[offset + 2]! > 4) return FramingProblem.BadVersion;
  if (filled >= 5) {
    const length = (header[offset + 3]! << 8) | header[offset + 4]!;
    if (length > MAX_RECORD_FRAGMENT_LENGTH) return FramingProblem.BadLength;
  }
  return undefined;
}

export class RecordFramer {
  private readonly header = new Uint8Array(5);
  private headerFilled = 0;
  private body: Uint8Array | undefined;
  private bodyFilled = 0;
  /** Set once the stream stopped being TLS records; further bytes are ignored. */
  problem: FramingProblem | undefined;
  /** Set when a sink returned false. */
  stopped = false;
  records = 0;

  /** Bytes of an incomplete record held (header and body). */
  get pendingBytes(): number {
    return this.headerFilled + this.bodyFilled;
  }

  /** True when no record was framed yet and no header byte has been rejected. */
  get atStart(): boolean {
    return this.records === 0;
  }

  push(chunk: Uint8Array, sink: RecordSink): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n && !this.stopped && this.problem === undefined) {
      if (this.headerFilled === 0 && this.body === undefined && n - pos >= 5) {
        const problem = checkRecordHeader(chunk, pos, 5);
        if (problem) {
          this.problem = problem;
          return;
        }
        const length = (chunk[pos + 3]! << 8) | chunk[pos + 4]!;
        if (n - pos - 5 >= length) {
          const type = chunk[pos]!;
          const version = (chunk[pos + 1]! << 8) | chunk[pos + 2]!;
          const fragment = chunk.subarray(pos + 5, pos + 5 + length);
          pos += 5 + length;
          this.records++;
          if (!sink(type, version, fragment, false)) this.stopped = true;
          continue;
        }
      }
      if (this.body === undefined) {
        while (this.headerFilled < 5 && pos < n) this.header[this.headerFilled++] = chunk[pos++]!;
        const problem = checkRecordHeader(this.header, 0, this.headerFilled);
        if (problem) {
          this.problem = problem;
          return;
        }
        if (this.headerFilled < 5) return;
        // Not zero-filled: every byte is written before the record is delivered.
        this.body = Buffer.allocUnsafe((this.header[3]! << 8) | this.header[4]!);
        this.bodyFilled = 0;
      }
      const take = Math.min(this.body.length - this.bodyFilled, n - pos);
      this.body.set(chunk.subarray(pos, pos + take), this.bodyFilled);
      this.bodyFilled += take;
      pos += take;
      if (this.bodyFilled === this.body.length) {
        const body = this.body;
        const type = this.header[0]!;
        const version = (this.header[1]! << 8) | this.header[2]!;
        this.body = undefined;
        this.headerFilled = 0;
        this.bodyFilled = 0;
        this.records++;
        if (!sink(type, version, body, true)) this.stopped = true;
      }
    }
  }

  /** Drops an incomplete record (at a gap or the end of the stream); returns how many bytes were dropped. */
  discardPartial(): number {
    const dropped = this.pendingBytes;
    this.headerFilled = 0;
    this.body = undefined;
    this.bodyFilled = 0;
    return dropped;
  }
}
