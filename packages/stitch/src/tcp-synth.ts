/**
 * Synthesizes the packets of one TCP connection, both directions, from its stream bytes: the three-way
 * handshake, data segmented to the MSS, acknowledgements, and the teardown, with sequence and
 * acknowledgement numbers consistent across both directions and correct checksums.
 *
 * - Segment size: the MTU minus the encapsulation budget minus the IP and TCP headers, and never more than
 *   the MSS the receiver announced (when the tapper saw it).
 * - Acknowledgements: after each chunk the receiver acknowledges it with a pure ACK, and within a long
 *   chunk every `ackEvery` segments, so the bytes in flight never exceed the receiver's window.
 * - A gap advances the sender's sequence number without packets, as a capture with loss at the capture
 *   point looks: the receiver got the bytes, the capture did not. An analyzer flags the gap where it is:
 *   "previous segment not captured" on the first segment after it, and "ACKed unseen segment" on the
 *   receiver's ACK that covers it. A missing tail is acknowledged only by the FIN exchange.
 * - Timestamps: a chunk's segments are spread evenly over the chunk's span.
 * Frames are built in the sink's buffer: no allocation per packet.
 */
import type { FrameSink } from "@cloudtap/packet";
import { fold32, sumRange } from "@cloudtap/packet";
import {
  type DirectionTemplate,
  ETHERNET_HEADER,
  put16,
  put32,
  sumBytes,
  TCP_HEADER,
} from "./frame-writer.js";

export const TcpFlags = { Fin: 0x01, Syn: 0x02, Rst: 0x04, Psh: 0x08, Ack: 0x10 } as const;

export interface TcpHandshakeOptions {
  /** MSS each side announces on its SYN (undefined: option not sent). */
  readonly clientMss?: number;
  readonly serverMss?: number;
  readonly clientWindowScale?: number;
  readonly serverWindowScale?: number;
  readonly sackPermitted?: boolean;
}

export interface TcpSynthOptions {
  readonly templates: readonly [DirectionTemplate, DirectionTemplate];
  readonly clientPort: number;
  readonly serverPort: number;
  readonly clientIsn: number;
  readonly serverIsn: number;
  /** Largest IP packet (the link MTU minus any encapsulation). */
  readonly ipMtu: number;
  readonly handshake: TcpHandshakeOptions;
  /** First IPv4 id per direction. */
  readonly ipIds: readonly [number, number];
}

export class TcpSynthStats {
  packets = 0;
  payloadBytes = 0;
  gaps = 0;
  gapBytes = 0;
}

const MAX_WINDOW_FIELD = 0xffff;

export class TcpSynth {
  /** Next sequence number each side sends. */
  private readonly seq: [number, number];
  /** The end of what each side sent that a capture has seen (ACKs of the peer never go past it). */
  private readonly seen: [number, number];
  private readonly ipId: [number, number];
  private readonly mss: [number, number];
  private readonly windowField: [number, number];
  private readonly ackEvery: [number, number];
  private readonly ports: [[number, number], [number, number]];
  private finished = false;
  private readonly options = new Uint8Array(40);

  constructor(
    private readonly sink: FrameSink,
    private readonly o: TcpSynthOptions,
    readonly stats: TcpSynthStats = new TcpSynthStats(),
  ) {
    this.seq = [o.clientIsn >>> 0, o.serverIsn >>> 0];
    this.seen = [o.clientIsn >>> 0, o.serverIsn >>> 0];
    this.ipId = [o.ipIds[0] & 0xffff, o.ipIds[1] & 0xffff];
    const ipHeader = o.templates[0].ipHeader;
    const linkMss = o.ipMtu - ipHeader - TCP_HEADER;
    const h = o.handshake;
    // A side sends segments no larger than the MSS its peer announced.
    this.mss = [
      Math.max(1, Math.min(linkMss, h.serverMss ?? linkMss)),
      Math.max(1, Math.min(linkMss, h.clientMss ?? linkMss)),
    ];
    // Window field each side advertises: the largest, so its scaled window is as large as it can be.
    const scale = (ws: number | undefined) => (ws === undefined ? 0 : Math.min(14, ws));
    const wsKnown = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
    const receiveWindow = [
      MAX_WINDOW_FIELD * 2 ** (wsKnown ? scale(h.clientWindowScale) : 0),
      MAX_WINDOW_FIELD * 2 ** (wsKnown ? scale(h.serverWindowScale) : 0),
    ];
    this.windowField = [MAX_WINDOW_FIELD, MAX_WINDOW_FIELD];
    // The receiver acknowledges often enough that a sender never has more than half its window in flight.
    this.ackEvery = [
      Math.max(1, Math.floor(receiveWindow[1]! / 2 / this.mss[0])),
      Math.max(1, Math.floor(receiveWindow[0]! / 2 / this.mss[1])),
    ];
    this.ports = [
      [o.clientPort, o.serverPort],
      [o.serverPort, o.clientPort],
    ];
  }

  /** The three-way handshake, at `timestampNs`. */
  handshake(timestampNs: bigint): void {
    const h = this.o.handshake;
    const synOptions = (mss: number | undefined, ws: number | undefined): number => {
      const b = this.options;
      let n = 0;
      if (mss !== undefined) {
        b[n++] = 2;
        b[n++] = 4;
        b[n++] = mss >>> 8;
        b[n++] = mss & 0xff;
      }
      if (h.sackPermitted) {
        b[n++] = 1;
        b[n++] = 1;
        b[n++] = 4;
        b[n++] = 2;
      }
      const bothScale = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
      if (bothScale && ws !== undefined) {
        b[n++] = 1;
        b[n++] = 3;
        b[n++] = 3;
        b[n++] = Math.min(14, ws);
      }
      return n;
    };
    const cIsn = this.seq[0];
    const sIsn = this.seq[1];
    this.segment(
      0,
      TcpFlags.Syn,
      cIsn,
      0,
      undefined,
      0,
      0,
      timestampNs,
      synOptions(h.clientMss, h.clientWindowScale),
      0xffff,
    );
    this.segment(
      1,
      TcpFlags.Syn | TcpFlags.Ack,
      sIsn,
      (cIsn + 1) >>> 0,
      undefined,
      0,
      0,
      timestampNs,
      synOptions(h.serverMss, h.serverWindowScale),
      0xffff,
    );
    this.seq[0] = this.seen[0] = (cIsn + 1) >>> 0;
    this.seq[1] = this.seen[1] = (sIsn + 1) >>> 0;
    this.segment(0, TcpFlags.Ack, this.seq[0], this.seq[1], undefined, 0, 0, timestampNs, 0);
  }

  /** Stream bytes from one side: segmented, sent, acknowledged. */
  data(dir: 0 | 1, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void {
    if (bytes.length === 0 || this.finished) return;
    const mss = this.mss[dir];
    const n = Math.ceil(bytes.length / mss);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const other = (1 - dir) as 0 | 1;
    const ackEvery = this.ackEvery[dir];
    let ts = timestampNs;
    for (let k = 0, at = 0; k < n; k++, at += mss) {
      const len = Math.min(mss, bytes.length - at);
      if (n > 1 && spanNs > 0) ts = timestampNs + BigInt(Math.floor((spanNs * k) / (n - 1)));
      const last = k === n - 1;
      const flags = TcpFlags.Ack | (last ? TcpFlags.Psh : 0);
      this.segment(dir, flags, this.seq[dir], this.seen[other], bytes, at, len, ts, 0, undefined, view);
      this.seq[dir] = (this.seq[dir] + len) >>> 0;
      this.seen[dir] = this.seq[dir];
      this.stats.payloadBytes += len;
      if (last || (k + 1) % ackEvery === 0) this.ack(other, ts);
    }
  }

  /** `length` bytes of one side that the tapper never captured. */
  gap(dir: 0 | 1, length: number): void {
    if (length <= 0 || this.finished) return;
    this.seq[dir] = (this.seq[dir] + length) >>> 0;
    this.stats.gaps++;
    this.stats.gapBytes += length;
  }

  /** A pure ACK from `dir` for everything of the other side seen so far. */
  ack(dir: 0 | 1, timestampNs: bigint): void {
    this.segment(dir, TcpFlags.Ack, this.seq[dir], this.seen[1 - dir]!, undefined, 0, 0, timestampNs, 0);
  }

  /** FIN exchange started by `initiator`: FIN/ACK, FIN/ACK, ACK. */
  fin(initiator: 0 | 1, timestampNs: bigint): void {
    if (this.finished) return;
    this.finished = true;
    const other = (1 - initiator) as 0 | 1;
    // A FIN after a missing tail carries the sequence number after the gap: it is "seen" from here on.
    this.segment(
      initiator,
      TcpFlags.Fin | TcpFlags.Ack,
      this.seq[initiator],
      this.seen[other],
      undefined,
      0,
      0,
      timestampNs,
      0,
    );
    this.seq[initiator] = this.seen[initiator] = (this.seq[initiator] + 1) >>> 0;
    this.seen[other] = this.seq[other];
    this.segment(
      other,
      TcpFlags.Fin | TcpFlags.Ack,
      this.seq[other],
      this.seen[initiator],
      undefined,
      0,
      0,
      timestampNs,
      0,
    );
    this.seq[other] = this.seen[other] = (this.seq[other] + 1) >>> 0;
    this.segment(
      initiator,
      TcpFlags.Ack,
      this.seq[initiator],
      this.seq[other],
      undefined,
      0,
      0,
      timestampNs,
      0,
    );
  }

  /** RST from `initiator`. */
  rst(initiator: 0 | 1, timestampNs: bigint): void {
    if (this.finished) return;
    this.finished = true;
    const other = (1 - initiator) as 0 | 1;
    this.segment(
      initiator,
      TcpFlags.Rst | TcpFlags.Ack,
      this.seq[initiator],
      this.seen[other],
      undefined,
      0,
      0,
      timestampNs,
      0,
    );
  }

  /**
   * Writes one segment. `payload[at, at + len)` is the data (`view` a DataView over `payload` for the
   * checksum); `optionLength` bytes of `this.options` go into the header.
   */
  private segment(
    dir: 0 | 1,
    flags: number,
    seq: number,
    ack: number,
    payload: Uint8Array | undefined,
    at: number,
    len: number,
    timestampNs: bigint,
    optionLength: number,
    window = this.windowField[dir],
    view?: DataView,
  ): void {
    const t = this.o.templates[dir];
    const tcpAt = ETHERNET_HEADER + t.ipHeader;
    const tcpLength = TCP_HEADER + optionLength + len;
    const frame = this.sink.begin(tcpAt + tcpLength);
    const id = this.ipId[dir];
    this.ipId[dir] = (id + 1) & 0xffff;
    t.writeIp(frame, tcpLength, id);
    const [sport, dport] = this.ports[dir];
    put16(frame, tcpAt, sport);
    put16(frame, tcpAt + 2, dport);
    put32(frame, tcpAt + 4, seq);
    put32(frame, tcpAt + 8, flags & TcpFlags.Ack ? ack : 0);
    put16(frame, tcpAt + 12, (((TCP_HEADER + optionLength) >> 2) << 12) | flags);
    put16(frame, tcpAt + 14, window);
    put16(frame, tcpAt + 16, 0);
    put16(frame, tcpAt + 18, 0);
    if (optionLength > 0) frame.set(this.options.subarray(0, optionLength), tcpAt + TCP_HEADER);
    let sum = t.addressSum + 6 + tcpLength;
    sum = sumBytes(frame, tcpAt, tcpAt + TCP_HEADER + optionLength, sum);
    if (payload && len > 0) {
      frame.set(payload.subarray(at, at + len), tcpAt + TCP_HEADER + optionLength);
      sum = sumRange(
        view ?? new DataView(payload.buffer, payload.byteOffset, payload.byteLength),
        at,
        at + len,
        sum,
      );
    }
    put16(frame, tcpAt + 16, ~fold32(sum) & 0xffff);
    this.sink.commit(timestampNs);
    this.stats.packets++;
  }
}
