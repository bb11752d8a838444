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
import { fold32 } from "@cloudtap/packet";
import { copyAndSum } from "@cloudtap/packet/copy-sum";
import { ETHERNET_HEADER, type FlowTemplates, put16, put32, sumBytes, TCP_HEADER } from "./frame-writer.js";
import type { TimeOrder } from "./time-order.js";

export const TcpFlags = { Fin: 0x01, Syn: 0x02, Rst: 0x04, Psh: 0x08, Ack: 0x10 } as const;

export interface TcpHandshakeOptions {
  /** MSS each side announces on its SYN (undefined: option not sent). */
  readonly clientMss?: number;
  readonly serverMss?: number;
  /** Window scale each side announces; sent only when both are known (RFC 7323 needs both). */
  readonly clientWindowScale?: number;
  readonly serverWindowScale?: number;
  readonly sackPermitted?: boolean;
  /** Both sides use TCP timestamps (RFC 7323): every segment carries TSval and TSecr. */
  readonly timestamps?: boolean;
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
  /** With a time-order stage as the sink: this flow's number in it (`TimeOrder.open`). */
  readonly flow?: number;
  /** Offset of both sides' timestamp clocks (TSval = packet time in ms plus it; side 1 a fixed step apart). */
  readonly tsOffset?: number;
}

export class TcpSynthStats {
  packets = 0;
  payloadBytes = 0;
  gaps = 0;
  gapBytes = 0;
}

const WINDOW_FIELD = 0xffff;
/**
 * The receive window each side reaches once scaling is on (Linux's default largest receive buffer,
 * tcp_rmem[2]), advertised in the units of the side's recorded window scale.
 */
export const SCALED_RECEIVE_WINDOW = 6 * 1024 * 1024;
/** Option bytes of a segment with timestamps: NOP, NOP, kind 8, length 10, TSval, TSecr. */
const TS_OPTION_BYTES = 12;
/** SYN options are built here; frames copy them at once, so one buffer serves every connection. */
const synOptions = new Uint8Array(40);

/** TCP timestamp clocks of a connection (only when the tapper saw both sides use them). */
class TimestampClocks {
  /** The last TSval each side sent (the peer echoes it as TSecr), as signed 32 bits. */
  last0 = 0;
  last1 = 0;
  constructor(readonly offset: number) {}

  /** Side `d`'s TSval at `ms` (Unix ms): a millisecond clock, each side with its own offset. */
  value(d: 0 | 1, ms: number): number {
    return ((Math.floor(ms) % 0x1_0000_0000) + this.offset + (d === 0 ? 0 : 0x2f1c_3a5b)) | 0;
  }
}

export class TcpSynth {
  private readonly t: FlowTemplates;
  /** Client port in the high 16 bits, server port in the low (one small integer). */
  private readonly ports: number;
  // Next sequence number each side sends, and the end of what each side sent that the capture has seen, as
  // signed 32-bit values (small integers in V8, where an unsigned value above 2^31 would be a boxed double:
  // an idle connection's size matters); written out as the same 32 bits.
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
  /** Window field of each side's segments after the handshake: side 0 in the low 16 bits, side 1 above. */
  private readonly windows: number;
  /** TCP timestamps, when both sides use them. */
  private readonly tsClocks: TimestampClocks | undefined;
  private finished = false;
  /** The connection's clock: the latest time stamped so far (record time; -1 before the first packet). */
  private clockNs = -1n;
  /** -1: `sink` is a FrameSink; else `sink` is a time-order stage and this the flow's number in it. */
  private readonly flow: number;

  constructor(
    private readonly sink: FrameSink | TimeOrder,
    o: TcpSynthOptions,
    readonly stats: TcpSynthStats = new TcpSynthStats(),
  ) {
    this.flow = o.flow ?? -1;
    this.t = o.templates;
    this.ports = (o.clientPort << 16) | o.serverPort | 0;
    this.seq0 = this.seen0 = o.clientIsn | 0;
    this.seq1 = this.seen1 = o.serverIsn | 0;
    this.id0 = o.ipIds[0] & 0xffff;
    this.id1 = o.ipIds[1] & 0xffff;
    const h = o.handshake;
    const linkMss = o.ipMtu - o.templates.ipHeader - TCP_HEADER;
    // The MSS counts payload without options: with timestamps a segment carries 12 bytes less.
    const optionBytes = h.timestamps ? TS_OPTION_BYTES : 0;
    this.mss0 = Math.max(1, Math.min(linkMss, h.serverMss ?? linkMss) - optionBytes);
    this.mss1 = Math.max(1, Math.min(linkMss, h.clientMss ?? linkMss) - optionBytes);
    const scaled = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
    // Each side's window field: its scaled receive window in its own units, or 65535 without scaling.
    const field = (ws: number | undefined) =>
      scaled
        ? Math.max(1, Math.min(WINDOW_FIELD, Math.floor(SCALED_RECEIVE_WINDOW / 2 ** Math.min(14, ws ?? 0))))
        : WINDOW_FIELD;
    const bytes = (ws: number | undefined) => field(ws) * 2 ** (scaled ? Math.min(14, ws ?? 0) : 0);
    this.windows = field(h.clientWindowScale) | (field(h.serverWindowScale) << 16) | 0;
    // The sender keeps at most half the receiver's window in flight.
    this.ackEvery0 = Math.max(1, Math.floor(bytes(h.serverWindowScale) / 2 / this.mss0));
    this.ackEvery1 = Math.max(1, Math.floor(bytes(h.clientWindowScale) / 2 / this.mss1));
    this.tsClocks = h.timestamps ? new TimestampClocks((o.tsOffset ?? 0) | 0) : undefined;
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
      this.seq0 = (this.seq0 + n) | 0;
      if (seenToo) this.seen0 = this.seq0;
    } else {
      this.seq1 = (this.seq1 + n) | 0;
      if (seenToo) this.seen1 = this.seq1;
    }
  }

  /** Returns the header templates to their arena; the synthesizer must not be used afterwards. */
  release(): void {
    this.t.release();
    if (this.flow >= 0) (this.sink as TimeOrder).endFlow(this.flow);
    else (this.sink as FrameSink & { end?(): void }).end?.();
  }

  /** `ts`, or the connection's clock when that is later (the clock then stands at the result). */
  private stamp(ts: bigint): bigint {
    if (ts < this.clockNs) return this.clockNs;
    this.clockNs = ts;
    return ts;
  }

  /**
   * The three-way handshake, at `timestampNs`: the SYN and SYN-ACK with the options the tapper recorded, in
   * the order Linux writes them (MSS, SACK permitted, timestamps, window scale), windows unscaled as RFC 7323
   * has them on a SYN.
   */
  handshake(at: bigint, h: TcpHandshakeOptions): void {
    const timestampNs = this.stamp(at);
    const scaled = h.clientWindowScale !== undefined && h.serverWindowScale !== undefined;
    const ts = this.tsClocks;
    const ms = ts ? Number(timestampNs) / 1e6 : 0;
    const options = (
      mss: number | undefined,
      ws: number | undefined,
      tsval: number,
      tsecr: number,
    ): number => {
      const b = synOptions;
      let n = 0;
      if (mss !== undefined) {
        b[n++] = 2;
        b[n++] = 4;
        b[n++] = mss >>> 8;
        b[n++] = mss & 0xff;
      }
      if (h.sackPermitted && ts) {
        b[n++] = 4;
        b[n++] = 2;
      } else if (h.sackPermitted) {
        b[n++] = 1;
        b[n++] = 1;
        b[n++] = 4;
        b[n++] = 2;
      } else if (ts) {
        b[n++] = 1;
        b[n++] = 1;
      }
      if (ts) {
        b[n++] = 8;
        b[n++] = 10;
        put32(b, n, tsval);
        put32(b, n + 4, tsecr);
        n += 8;
      }
      if (scaled && ws !== undefined) {
        b[n++] = 1;
        b[n++] = 3;
        b[n++] = 3;
        b[n++] = Math.min(14, ws);
      }
      return n;
    };
    const synWindow = (mss: number | undefined) => Math.min(WINDOW_FIELD, 44 * (mss ?? 1460));
    const c = this.seq0;
    const s = this.seq1;
    const tsval0 = ts ? ts.value(0, ms) : 0;
    const tsval1 = ts ? ts.value(1, ms) : 0;
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
      options(h.clientMss, h.clientWindowScale, tsval0, 0),
      undefined,
      synWindow(h.clientMss),
    );
    if (ts) ts.last0 = tsval0;
    this.segment(
      1,
      TcpFlags.Syn | TcpFlags.Ack,
      s,
      (c + 1) | 0,
      undefined,
      0,
      0,
      timestampNs,
      0,
      options(h.serverMss, h.serverWindowScale, tsval1, tsval0),
      undefined,
      synWindow(h.serverMss),
    );
    if (ts) ts.last1 = tsval1;
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
   * `optionLength` bytes of the shared SYN option buffer in the header (else, with timestamps, the timestamp
   * option), `window` the window field (default: the side's window after the handshake).
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
    window?: number,
  ): void {
    const t = this.t;
    const ts = this.tsClocks;
    const tsOption = ts !== undefined && optionLength === 0;
    const options = tsOption ? TS_OPTION_BYTES : optionLength;
    const headerLength = TCP_HEADER + options;
    const tcpLength = headerLength + len;
    const frameLength = ETHERNET_HEADER + t.ipHeader + tcpLength;
    // Build in the sink's own buffer at an offset when it offers that (no view object per frame).
    const sink = this.sink;
    const flow = this.flow;
    let frame: Uint8Array;
    let base: number;
    if (flow >= 0 || sink.beginAt) {
      base = sink.beginAt!(frameLength);
      frame = sink.buffer!;
    } else {
      frame = (sink as FrameSink).begin(frameLength);
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
    const ports = this.ports;
    const sport = dir === 0 ? ports >>> 16 : ports & 0xffff;
    const dport = dir === 0 ? ports & 0xffff : ports >>> 16;
    const ackField = flags & TcpFlags.Ack ? ack : 0;
    const offsetFlags = ((headerLength >> 2) << 12) | flags;
    const win = window ?? (dir === 0 ? this.windows & 0xffff : this.windows >>> 16);
    put16(frame, tcpAt, sport);
    put16(frame, tcpAt + 2, dport);
    put32(frame, tcpAt + 4, seq);
    put32(frame, tcpAt + 8, ackField);
    put16(frame, tcpAt + 12, offsetFlags);
    put16(frame, tcpAt + 14, win);
    put32(frame, tcpAt + 16, 0); // checksum and urgent pointer
    // The header's sum from its fields (no second read of the bytes just written).
    let sum =
      t.addressSum +
      6 +
      tcpLength +
      sport +
      dport +
      (seq >>> 16) +
      (seq & 0xffff) +
      (ackField >>> 16) +
      (ackField & 0xffff) +
      offsetFlags +
      win;
    if (tsOption) {
      // NOP, NOP, timestamps: TSval from the packet's time, TSecr the peer's last TSval.
      const tsval = ts.value(dir, Number(timestampNs) / 1e6 + offsetNs / 1e6);
      const tsecr = dir === 0 ? ts.last1 : ts.last0;
      if (dir === 0) ts.last0 = tsval;
      else ts.last1 = tsval;
      const o = tcpAt + TCP_HEADER;
      put32(frame, o, 0x0101080a);
      put32(frame, o + 4, tsval);
      put32(frame, o + 8, tsecr);
      sum += 0x0101 + 0x080a + (tsval >>> 16) + (tsval & 0xffff) + (tsecr >>> 16) + (tsecr & 0xffff);
    } else if (optionLength > 0) {
      const o = tcpAt + TCP_HEADER;
      for (let k = 0; k < optionLength; k++) frame[o + k] = synOptions[k]!;
      sum = sumBytes(synOptions, 0, optionLength, sum);
    }
    // The payload is summed while it is copied (one pass, native when built).
    if (payload && len > 0) sum = copyAndSum(payload, at, len, frame, tcpAt + headerLength, sum, view);
    put16(frame, tcpAt + 16, ~fold32(sum) & 0xffff);
    if (flow >= 0) (sink as TimeOrder).commitFlow(flow, timestampNs, offsetNs);
    else (sink as FrameSink).commit(timestampNs, offsetNs);
    this.stats.packets++;
  }
}
