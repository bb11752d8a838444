/**
 * Merges the output of several header-less capture encoders (`fileHeader: false`) into one sequence of
 * records ordered by packet time, for one file behind one file header. Each input is a list of chunks in the
 * order its encoder produced them; every chunk holds whole records (an encoder never splits one).
 *
 * Order: the input whose next packet is earliest goes first; ties go to the lower input index, and an input's
 * own order is always kept (the merge is stable). A pcapng block that is not a packet (a Decryption Secrets
 * Block) carries no time: it goes out as soon as it is at the front of its input, so it still precedes the
 * packets it decrypts. Records that are contiguous in one chunk and all due before the other inputs' next
 * packet are handed to `emit` as one view (no copy here; `emit` copies or writes before returning).
 */
import { PcapWriteError, PcapWriteErrorCode } from "./errors.js";
import { PcapngBlockType } from "./pcapng-reader.js";

export type RecordFormat = "pcap" | "pcapng";

class Cursor {
  chunk = 0;
  at = 0;
  /** Time of the record at the front: high and low 32-bit words (pcapng) or seconds and fraction (pcap). */
  high = 0;
  low = 0;
  /** False when the front record is not a packet (it then sorts before everything). */
  timed = false;
  private view: DataView | undefined;

  constructor(
    readonly chunks: readonly Uint8Array[],
    private readonly pcapng: boolean,
  ) {
    this.skipEmpty();
  }

  get done(): boolean {
    return this.chunk >= this.chunks.length;
  }

  get bytes(): Uint8Array {
    return this.chunks[this.chunk]!;
  }

  private skipEmpty(): void {
    while (this.chunk < this.chunks.length && this.at >= this.chunks[this.chunk]!.length) {
      this.chunk++;
      this.at = 0;
      this.view = undefined;
    }
    if (!this.done) this.readFront();
  }

  /** Length of the record at `at` (also checks that it fits in its chunk). */
  lengthAt(at: number): number {
    const b = this.bytes;
    if (!this.view) this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const v = this.view;
    if (at + (this.pcapng ? 12 : 16) > b.length) throw malformed(at);
    const n = this.pcapng ? v.getUint32(at + 4, true) : 16 + v.getUint32(at + 8, true);
    if (n < 12 || at + n > b.length) throw malformed(at);
    return n;
  }

  /** Reads the time (or the absence of one) of the record at `at` into high/low/timed. */
  timeAt(at: number): void {
    const v = this.view!;
    if (this.pcapng) {
      this.timed = v.getUint32(at, true) === PcapngBlockType.EnhancedPacket;
      if (this.timed) {
        this.high = v.getUint32(at + 12, true);
        this.low = v.getUint32(at + 16, true);
      }
    } else {
      this.timed = true;
      this.high = v.getUint32(at, true);
      this.low = v.getUint32(at + 4, true);
    }
  }

  private readFront(): void {
    this.lengthAt(this.at);
    this.timeAt(this.at);
  }

  advanceTo(at: number): void {
    this.at = at;
    this.skipEmpty();
  }
}

function malformed(at: number): PcapWriteError {
  return new PcapWriteError(PcapWriteErrorCode.BadPacket, `merge: a record at ${at} does not fit its chunk`);
}

/** True when (h1, l1) is earlier than (h2, l2), or equal and `tieFirst`. */
function before(h1: number, l1: number, h2: number, l2: number, tieFirst: boolean): boolean {
  return h1 < h2 || (h1 === h2 && (l1 < l2 || (l1 === l2 && tieFirst)));
}

export function mergeCaptureRecords(
  format: RecordFormat,
  inputs: readonly (readonly Uint8Array[])[],
  emit: (records: Uint8Array) => void,
): void {
  const pcapng = format === "pcapng";
  const cursors = inputs.map((chunks) => new Cursor(chunks, pcapng)).filter((c) => !c.done);
  while (cursors.length > 0) {
    // The front-runner: an untimed block first, else the earliest packet (the lower input on ties).
    let best = 0;
    for (let i = 1; i < cursors.length && cursors[best]!.timed; i++) {
      const c = cursors[i]!;
      const b = cursors[best]!;
      if (!c.timed || before(c.high, c.low, b.high, b.low, false)) best = i;
    }
    const c = cursors[best]!;
    // The earliest front among the others bounds the run (an untimed front there: only untimed blocks run on).
    let other = -1;
    for (let i = 0; i < cursors.length; i++) {
      if (i === best) continue;
      const o = cursors[i]!;
      const p = other < 0 ? undefined : cursors[other]!;
      if (!p || (p.timed && (!o.timed || before(o.high, o.low, p.high, p.low, false)))) other = i;
    }
    const bytes = c.bytes;
    const start = c.at;
    let end = start + c.lengthAt(start);
    if (other >= 0) {
      const o = cursors[other]!;
      const bounded = o.timed;
      const oh = o.high;
      const ol = o.low;
      const tieFirst = best < other;
      // Extend the run while the next record of this chunk is untimed or still due first.
      while (end < bytes.length) {
        const length = c.lengthAt(end);
        c.timeAt(end);
        if (c.timed && (!bounded || !before(c.high, c.low, oh, ol, tieFirst))) break;
        end += length;
      }
    } else end = bytes.length;
    emit(bytes.subarray(start, end));
    c.advanceTo(end);
    if (c.done) cursors.splice(best, 1);
  }
}
