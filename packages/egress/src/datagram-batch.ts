/**
 * Datagrams built back to back in one preallocated slab, with their offsets, lengths and source-port slots
 * in typed arrays beside it: the unit a tunnel output hands to a transport. A batch belongs to one target;
 * it is reused (`reset`) once the transport is done with its bytes.
 */

export class DatagramBatch {
  readonly bytes: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  /** Source-port slot of each datagram (the flow's hash modulo the transport's slots). */
  readonly slots: Uint16Array;
  /** Each datagram's packet time in ns relative to the output's first packet (pacing only). */
  readonly times: Float64Array | undefined;
  used = 0;
  count = 0;
  /** Datagrams already passed to the transport (a paced batch leaves in several parts). */
  sent = 0;
  /** Transport sends of this batch still in flight. */
  inFlight = 0;

  constructor(
    readonly target: number,
    bytes: number,
    readonly capacity: number,
    withTimes: boolean,
  ) {
    this.bytes = new Uint8Array(bytes);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.slots = new Uint16Array(capacity);
    this.times = withTimes ? new Float64Array(capacity) : undefined;
  }

  /** Room for one more datagram of `length` bytes. */
  fits(length: number): boolean {
    return this.count < this.capacity && this.used + length <= this.bytes.length;
  }

  reset(): void {
    this.used = 0;
    this.count = 0;
    this.sent = 0;
    this.inFlight = 0;
  }
}

/** Per-target counters a transport keeps. */
export interface TransportTargetStats {
  datagrams: number;
  bytes: number;
  /** Datagrams the kernel refused, by error code (ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ...). */
  readonly errors: Record<string, number>;
  lastError: string | undefined;
  /**
   * ICMP reports that datagrams sent did not arrive (port or host unreachable), by error code. Only a
   * transport that reads the sockets' error queues has them (the native one); node:dgram instead sees such
   * a report as the refusal of its next send.
   */
  readonly unreachable: Record<string, number>;
}

/**
 * Where tunnel datagrams leave: UDP sockets (node:dgram, or the native sendmmsg/GSO path). The transport
 * owns the outer IP and UDP headers: one socket (one outer source port) per target and slot.
 */
export interface DatagramTransport {
  /** Source-port slots per target; a flow uses slot `hash % slots`, so both directions share one. */
  readonly slots: number;
  /** "dgram" or "sendmmsg" (for reports). */
  readonly mechanism: string;
  /**
   * Sends datagrams [from, to) of `batch` to its target. Returns nothing when the bytes were handed to the
   * kernel before returning, or a promise that settles when the batch's bytes may be reused. Never throws for
   * a refused datagram: that is counted in `stats`.
   */
  send(batch: DatagramBatch, from: number, to: number): void | Promise<void>;
  stats(target: number): TransportTargetStats;
  /** The outer source port of each slot of a target (for reports and tests). */
  sourcePorts(target: number): readonly number[];
  close(): Promise<void>;
}

export function emptyTransportStats(): TransportTargetStats {
  return { datagrams: 0, bytes: 0, errors: {}, lastError: undefined, unreachable: {} };
}
