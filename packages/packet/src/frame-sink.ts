/**
 * Where synthesized frames go, without a copy or an object per frame: the builder asks for a buffer of the
 * frame's length, writes the frame into it, and commits it with its timestamp. File writers hand out space
 * in their output chunk (after the record header); tunnel senders hand out space after the outer headers.
 */
export interface FrameSink {
  /** A buffer of exactly `length` bytes for the next frame; valid until `commit` (or the next `begin`). */
  begin(length: number): Uint8Array;
  /**
   * Records the frame written into the last `begin` buffer, stamped `timestampNs + offsetNs` (the offset
   * lets a builder spread a chunk's packets over time without a BigInt per packet). `originalLength`
   * (default: the buffer's length) is the frame's length on the wire when the sink was given a shortened frame.
   */
  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void;
}
