/**
 * Synthesizes the packets of one TCP connection, both directions, from its stream bytes: the three-way
 * handshake, data segmented to the MSS, acknowledgements, and the teardown, with sequence and
 * acknowledgement numbers consistent across both directions and correct checksums.
 *
 * - Segment size: the MTU minus the encapsulation budget minus the IP and TCP headers, and never more than
 *   the MSS the receiver announced (when the tapper saw it).
 * - Acknowledgements: after each chunk the receiver acknowledges it with a pure ACK, and within a long
 *   chunk every `ackEvery` segments, so the bytes in flight never exceed half the receiver's window.
 * - A gap advances the sender's sequence number without packets, as a capture with loss at the capture
 *   point looks: the receiver got the bytes, the capture did not. An analyzer flags the gap where it is:
 *   "previous segment not captured" on the first segment after it, and "ACKed unseen segment" on the
 *   receiver's ACK that covers it. A missing tail is acknowledged only by the FIN exchange.
 * - Timestamps: a chunk's segments are spread evenly over the chunk's span. The connection has one clock:
 *   no packet is stamped before a packet made before it (which it follows in sequence or acknowledges), so
 *   a chunk that starts before the previous chunk's span ended (the other side answered while this side
 *   was still sending) starts where that span ended.
 * Frames are built in the sink's buffer: no allocation per packet. State is scalar fields (an idle
 * connection costs one small object).
 */
import type { FrameSink } from "@cloudtap/packet";
import { fold32, sumRange } from "@cloudtap/packet";
import { ETHERNET_HEADER, type FlowTemplates, put16, put32, sumBytes, TCP_HEADER } from "./frame-writer.js";

export const TcpFlags = { Fin: 0x01, Syn: 0x02, Rst: 0x04, Psh: 0x08, Ack: 0x10 } as const;

export interface TcpHandshakeOptions {
  /** MSS each side announces on its SYN (undefined: option not sent). */
  readonly clientMss?: number;
  readonly serverMss?: number;
  /** Window scale each side announces; sent only when both are known (RFC 7323 needs both). */
  readonly clientWindowScale?: number;
  readonly serverWindowScale?: number;
  readonly sackPermitted?: boolean;
}

export interface TcpSynthOptions {
  readonly templates: FlowTemplates;
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

const WINDOW_FIELD = 0xffff;
/** SYN options are built here; frames copy them at once, so one buffer serves every connection. */
const synOptions = new Uint8Array(40);

export class TcpSynth {
  private readonly t: FlowTemplates;
  private readonly clientPort: number;
  private readonly serverPort: number;
  // Next sequence number each side sends, and the end of what each side sent that the capture has seen.
  private seq0: number;
  private seq1: number;
  private seen0: number;
  private seen1: number;
  private id0: number;
  private id1: number;
  /** Segment size per sending side (capped by the peer's MSS) and how often the peer ACKs. */
  private readonly mss0: number;
  private readonly mss1: number;
  private readonly ackEvery0: number;
  private readonly ackEvery1: number;
  private finished = false;
  /** The connection's clock: the latest time stamped so far (record time; -1 before the first packet). */
  private clockNs = -1n;

  constructor(
    private readonly sink: FrameSink,
    o: TcpSynthOptions,
    readonly stats: TcpSynthStats = new TcpSynthStats(),
  ) {
    this.t = o.templates;
    this.clientPort = o.clientPort;
    this.serverPort = o.serverPort;
    this.seq0 = this.seen0 = o.clientIsn >>> 0;
    this.seq1 = this.seen1 = o.serverIsn >>> 0;
    this.id0 = o.ipIds[0] & 0xffff;
    this.id1 = o.ipIds[1] & 0xffff;
    const h = o.handshake;
    const linkMss = o.ipMtu - o.templates.ipHeader - TCP_HEADER;
    this.mss0 = Math.max(1, Math.min(linkMss, h.serverMss ?? linkMss));
    this.mss1 = Math.max(1, Math.min(linkMss, h.clientMss ?? linkMss));
    const scaled = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
    const window = (ws: number | undefined) => WINDOW_FIELD * 2 ** (scaled ? Math.min(14, ws ?? 0) : 0);
    this.ackEvery0 = Math.max(1, Math.floor(window(h.serverWindowScale) / 2 / this.mss0));
    this.ackEvery1 = Math.max(1, Math.floor(window(h.clientWindowScale) / 2 / this.mss1));
  }

  private seq(d: 0 | 1): number {
    return d === 0 ? this.seq0 : this.seq1;
  }

  private seen(d: 0 | 1): number {
    return d === 0 ? this.seen0 : this.seen1;
  }

  /** Advances side `d` by `n` bytes; `seenToo` when the capture saw them. */
  private advance(d: 0 | 1, n: number, seenToo: boolean): void {
    if (d === 0) {
      this.seq0 = (this.seq0 + n) >>> 0;
      if (seenToo) this.seen0 = this.seq0;
    } else {
      this.seq1 = (this.seq1 + n) >>> 0;
      if (seenToo) this.seen1 = this.seq1;
    }
  }

  /** Returns the header templates to their arena; the synthesizer must not be used afterwards. */
  release(): void {
    this.t.release();
    (this.sink as FrameSink & { end?(): void }).end?.();
  }

  /** `ts`, or the connection's clock when that is later (the clock then stands at the result). */
  private stamp(ts: bigint): bigint {
    if (ts < this.clockNs) return this.clockNs;
    this.clockNs = ts;
    return ts;
  }

  /** The three-way handshake, at `timestampNs`. */
  handshake(at: bigint, h: TcpHandshakeOptions): void {
    const timestampNs = this.stamp(at);
    const scaled = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
    const options = (mss: number | undefined, ws: number | undefined): number => {
      const b = synOptions;
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
      if (scaled && ws !== undefined) {
        b[n++] = 1;
        b[n++] = 3;
        b[n++] = 3;
        b[n++] = Math.min(14, ws);
      }
      return n;
    };
    const c = this.seq0;
    const s = this.seq1;
    this.segment(
      0,
      TcpFlags.Syn,
      c,
      0,
      undefined,
      0,
      0,
      timestampNs,
      0,
      options(h.clientMss, h.clientWindowScale),
    );
    this.segment(
      1,
      TcpFlags.Syn | TcpFlags.Ack,
      s,
      (c + 1) >>> 0,
      undefined,
      0,
      0,
      timestampNs,
      0,
      options(h.serverMss, h.serverWindowScale),
    );
    this.advance(0, 1, true);
    this.advance(1, 1, true);
    this.segment(0, TcpFlags.Ack, this.seq0, this.seq1, undefined, 0, 0, timestampNs, 0, 0);
  }

  /** Stream bytes from one side: segmented, sent, acknowledged. */
  data(dir: 0 | 1, bytes: Uint8Array, at: bigint, spanNs: number): void {
    if (bytes.length === 0 || this.finished) return;
    const timestampNs = this.stamp(at);
    const mss = dir === 0 ? this.mss0 : this.mss1;
    const ackEvery = dir === 0 ? this.ackEvery0 : this.ackEvery1;
    const other = (1 - dir) as 0 | 1;
    const n = Math.ceil(bytes.length / mss);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let k = 0, at = 0; k < n; k++, at += mss) {
      const len = Math.min(mss, bytes.length - at);
      const offset = n > 1 && spanNs > 0 ? Math.floor((spanNs * k) / (n - 1)) : 0;
      const last = k === n - 1;
      const flags = last ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack;
      this.segment(dir, flags, this.seq(dir), this.seen(other), bytes, at, len, timestampNs, offset, 0, view);
      this.advance(dir, len, true);
      this.stats.payloadBytes += len;
      if (last || (k + 1) % ackEvery === 0) this.ack(other, timestampNs, offset);
    }
    if (spanNs > 0 && n > 1) this.clockNs = timestampNs + BigInt(spanNs);
  }

  /** `length` bytes of one side that the tapper never captured. */
  gap(dir: 0 | 1, length: number): void {
    if (length <= 0 || this.finished) return;
    this.advance(dir, length, false);
    this.stats.gaps++;
    this.stats.gapBytes += length;
  }

  /** A pure ACK from `dir` for everything of the other side seen so far. */
  ack(dir: 0 | 1, timestampNs: bigint, offsetNs = 0): void {
    this.segment(
      dir,
      TcpFlags.Ack,
      this.seq(dir),
      this.seen((1 - dir) as 0 | 1),
      undefined,
      0,
      0,
      timestampNs,
      offsetNs,
      0,
    );
  }

  /** FIN exchange started by `initiator`: FIN/ACK, FIN/ACK, ACK. */
  fin(initiator: 0 | 1, at: bigint): void {
    if (this.finished) return;
    const timestampNs = this.stamp(at);
    this.finished = true;
    const other = (1 - initiator) as 0 | 1;
    this.segment(
      initiator,
      TcpFlags.Fin | TcpFlags.Ack,
      this.seq(initiator),
      this.seen(other),
      undefined,
      0,
      0,
      timestampNs,
      0,
      0,
    );
    this.advance(initiator, 1, true);
    // A FIN after a missing tail carries the sequence number after the gap: from here on it counts as seen.
    this.advance(other, 0, true);
    this.segment(
      other,
      TcpFlags.Fin | TcpFlags.Ack,
      this.seq(other),
      this.seen(initiator),
      undefined,
      0,
      0,
      timestampNs,
      0,
      0,
    );
    this.advance(other, 1, true);
    this.segment(
      initiator,
      TcpFlags.Ack,
      this.seq(initiator),
      this.seq(other),
      undefined,
      0,
      0,
      timestampNs,
      0,
      0,
    );
  }

  /** The teardown the tapper recorded: a FIN exchange, a RST, or nothing. */
  end(how: "fin" | "rst" | "none", initiator: 0 | 1, timestampNs: bigint): void {
    if (how === "fin") this.fin(initiator, timestampNs);
    else if (how === "rst") this.rst(initiator, timestampNs);
  }

  /** RST from `initiator`. */
  rst(initiator: 0 | 1, at: bigint): void {
    if (this.finished) return;
    const timestampNs = this.stamp(at);
    this.finished = true;
    const other = (1 - initiator) as 0 | 1;
    this.segment(
      initiator,
      TcpFlags.Rst | TcpFlags.Ack,
      this.seq(initiator),
      this.seen(other),
      undefined,
      0,
      0,
      timestampNs,
      0,
      0,
    );
  }

  /**
   * Writes one segment: `payload[at, at + len)` as data (`view` a DataView over `payload`, for the checksum),
   * `optionLength` bytes of the shared SYN option buffer in the header.
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
    offsetNs: number,
    optionLength: number,
    view?: DataView,
  ): void {
    const t = this.t;
    const headerLength = TCP_HEADER + optionLength;
    const tcpLength = headerLength + len;
    const frameLength = ETHERNET_HEADER + t.ipHeader + tcpLength;
    // Build in the sink's own buffer at an offset when it offers that (no view object per frame).
    const sink = this.sink;
    let frame: Uint8Array;
    let base: number;
    if (sink.beginAt) {
      base = sink.beginAt(frameLength);
      frame = sink.buffer!;
    } else {
      frame = sink.begin(frameLength);
      base = 0;
    }
    const tcpAt = base + ETHERNET_HEADER + t.ipHeader;
    let id: number;
    if (dir === 0) {
      id = this.id0;
      this.id0 = (id + 1) & 0xffff;
    } else {
      id = this.id1;
      this.id1 = (id + 1) & 0xffff;
    }
    t.writeIp(dir, frame, tcpLength, id, undefined, base);
    put16(frame, tcpAt, dir === 0 ? this.clientPort : this.serverPort);
    put16(frame, tcpAt + 2, dir === 0 ? this.serverPort : this.clientPort);
    put32(frame, tcpAt + 4, seq);
    put32(frame, tcpAt + 8, flags & TcpFlags.Ack ? ack : 0);
    put16(frame, tcpAt + 12, ((headerLength >> 2) << 12) | flags);
    put16(frame, tcpAt + 14, WINDOW_FIELD);
    put32(frame, tcpAt + 16, 0); // checksum and urgent pointer
    if (optionLength > 0) frame.set(synOptions.subarray(0, optionLength), tcpAt + TCP_HEADER);
    let sum = sumBytes(frame, tcpAt, tcpAt + headerLength, t.addressSum + 6 + tcpLength);
    if (payload && len > 0) {
      frame.set(payload.subarray(at, at + len), tcpAt + headerLength);
      sum = sumRange(
        view ?? new DataView(payload.buffer, payload.byteOffset, payload.byteLength),
        at,
        at + len,
        sum,
      );
    }
    put16(frame, tcpAt + 16, ~fold32(sum) & 0xffff);
    this.sink.commit(timestampNs, offsetNs);
    this.stats.packets++;
  }
}
