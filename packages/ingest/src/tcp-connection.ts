import {
  parseTcpOptions,
  seqAdd,
  seqDiff,
  TcpFlag,
  type TcpOptions,
  type TcpSegment,
  type TcpSeq,
} from "@cloudtap/packet";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  Direction,
  type Endpoint,
  type TapRecord,
  type TcpOptionsSeen,
  Transport,
} from "@cloudtap/tap-format";
import { StreamReassembler } from "./stream-reassembler.js";
import type { TcpCounters } from "./summary.js";

export interface TcpConnectionOptions {
  readonly connId: string;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly ipVersion: 4 | 6;
  /** Time of the connection's first packet. */
  readonly timestampNs: bigint;
  /** True when the first packet was neither a SYN nor a SYN-ACK. */
  readonly midstream: boolean;
  readonly attributes: Readonly<Record<string, string>>;
  readonly maxBufferedBytes: number;
  readonly maxChunkBytes: number;
  /** Receives the connection's records in the order they are made. */
  readonly emit: (record: TapRecord) => void;
  readonly counters: TcpCounters;
}

interface DirectionState {
  readonly reassembler: StreamReassembler;
  /**
   * A (sequence number, stream offset) pair that maps sequence numbers to offsets, moved forward with the
   * stream so that differences stay far below 2^31 however long the stream gets. Undefined until the first
   * segment that fixes where the stream starts.
   */
  anchorSeq: TcpSeq | undefined;
  anchorOffset: number;
  /** Payload bytes emitted in data records. */
  bytes: number;
  synOptions: TcpOptions | undefined;
  isn: TcpSeq | undefined;
  fin: boolean;
}

/**
 * One TCP connection: both directions' reassembly, handshake options, and close state. Records go to
 * `emit`: the conn-open (made once the handshake options are known, or before the first other record),
 * data records as reassembly delivers them, and the conn-close from `finish`.
 *
 * Offsets: a direction whose SYN was seen starts at ISN + 1. The client direction's start is also known
 * from the SYN-ACK's acknowledgment number when the SYN itself was missed. Otherwise (mid-stream) the
 * first segment seen in that direction defines offset 0, and bytes before it are dropped and counted.
 */
export class TcpConnection {
  readonly connId: string;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly midstream: boolean;
  readonly firstNs: bigint;
  lastNs: bigint;
  readonly #options: TcpConnectionOptions;
  readonly #dirs: readonly [DirectionState, DirectionState];
  #opened = false;
  #finished = false;
  #firstFin: Direction | undefined;
  #rst: Direction | undefined;
  #closeNs: bigint | undefined;

  constructor(options: TcpConnectionOptions) {
    this.#options = options;
    this.connId = options.connId;
    this.client = options.client;
    this.server = options.server;
    this.midstream = options.midstream;
    this.firstNs = options.timestampNs;
    this.lastNs = options.timestampNs;
    this.#dirs = [this.#newDirection(Direction.ClientToServer), this.#newDirection(Direction.ServerToClient)];
  }

  #newDirection(direction: Direction): DirectionState {
    const reassembler = new StreamReassembler(
      { maxBufferedBytes: this.#options.maxBufferedBytes, maxChunkBytes: this.#options.maxChunkBytes },
      (chunk) => {
        this.#open();
        this.#dirs[direction].bytes += chunk.payload.length;
        this.#options.emit({
          type: "data",
          connId: this.connId,
          direction,
          offset: chunk.offset,
          timestampNs: chunk.timestampNs,
          spanNs: chunk.spanNs,
          payload: chunk.payload,
        });
      },
    );
    return {
      reassembler,
      anchorSeq: undefined,
      anchorOffset: 0,
      bytes: 0,
      synOptions: undefined,
      isn: undefined,
      fin: false,
    };
  }

  /** RST seen, or FIN from both sides. */
  get closed(): boolean {
    return this.#rst !== undefined || (this.#dirs[0].fin && this.#dirs[1].fin);
  }

  /** Whether a direction still holds bytes behind a hole (a retransmission may yet fill it). */
  get waitingForHoles(): boolean {
    return this.#dirs[0].reassembler.bufferedBytes > 0 || this.#dirs[1].reassembler.bufferedBytes > 0;
  }

  /** Whether a direction has a chunk being coalesced. */
  get hasPendingChunk(): boolean {
    return this.#dirs[0].reassembler.pendingBytes > 0 || this.#dirs[1].reassembler.pendingBytes > 0;
  }

  /** Emits the chunks being coalesced (the connection went quiet). */
  flushPending(): void {
    if (this.#finished) return;
    this.#dirs[0].reassembler.flush();
    this.#dirs[1].reassembler.flush();
  }

  /** Whether `finish` ran (the conn-close record is written). */
  get finished(): boolean {
    return this.#finished;
  }

  /** The client's SYN sequence number, when seen. */
  get clientIsn(): TcpSeq | undefined {
    return this.#dirs[Direction.ClientToServer].isn;
  }

  /**
   * Handles one segment. `payload` is the segment's payload as captured (a prefix of it when `truncated`).
   */
  handle(
    direction: Direction,
    segment: TcpSegment,
    payload: Uint8Array,
    timestampNs: bigint,
    truncated: boolean,
  ): void {
    if (this.#finished) {
      // Closed already (both FINs or a RST, and nothing left to wait for): a retransmission or the last
      // ACK of the close, which changes nothing.
      this.#options.counters.afterCloseSegments++;
      this.#options.counters.afterCloseBytes += payload.length;
      return;
    }
    if (timestampNs > this.lastNs) this.lastNs = timestampNs;
    const dir = this.#dirs[direction];
    const flags = segment.flags;
    const syn = (flags & TcpFlag.Syn) !== 0;
    const seq = segment.sequenceNumber;

    if (syn) {
      if (dir.synOptions === undefined) {
        try {
          dir.synOptions = parseTcpOptions(segment.options);
        } catch {
          this.#options.counters.badOptions++;
        }
      }
      dir.isn ??= seq;
      if (dir.anchorSeq === undefined) dir.anchorSeq = seqAdd(seq, 1);
      if ((flags & TcpFlag.Ack) !== 0) {
        const peer = this.#dirs[direction === Direction.ClientToServer ? 1 : 0];
        // The SYN-ACK acknowledges the peer's ISN + 1: where the peer's stream starts.
        if (peer.anchorSeq === undefined) peer.anchorSeq = segment.acknowledgmentNumber;
        this.#open();
      }
    } else if (dir.anchorSeq === undefined && (flags & TcpFlag.Rst) === 0) {
      dir.anchorSeq = seq;
    }

    // Bytes on a RST are diagnostic text (RFC 9293 3.5.3), not part of the stream.
    // A segment cut by the snap length counts as truncated even when no payload byte was captured.
    if (truncated && (flags & TcpFlag.Rst) === 0) this.#options.counters.truncatedSegments++;
    if (payload.length > 0 && dir.anchorSeq !== undefined && (flags & TcpFlag.Rst) === 0) {
      const dataSeq = syn ? seqAdd(seq, 1) : seq;
      let offset = dir.anchorOffset + seqDiff(dataSeq, dir.anchorSeq);
      let data = payload;
      if (offset < 0) {
        const before = Math.min(-offset, data.length);
        this.#options.counters.beforeStreamStartBytes += before;
        data = data.subarray(before);
        offset += before;
      }
      if (data.length > 0) {
        // A chunk being coalesced on the other side ends here, so records follow the conversation's turns.
        this.#dirs[direction === Direction.ClientToServer ? 1 : 0].reassembler.flush();
        const r = dir.reassembler;
        const before = { ...r.counters };
        r.insert(offset, data, timestampNs);
        this.#count(before, r);
        dir.anchorSeq = seqAdd(dir.anchorSeq, r.nextOffset - dir.anchorOffset);
        dir.anchorOffset = r.nextOffset;
      }
    }

    if ((flags & TcpFlag.Fin) !== 0 && !dir.fin) {
      dir.fin = true;
      // No byte of this direction comes after its FIN: the chunk being coalesced is complete now, not when
      // the connection is closed seconds later (a record written late is stamped before the blob it is in).
      dir.reassembler.flush();
      this.#firstFin ??= direction;
      if (this.closed) this.#closeNs ??= timestampNs;
    }
    if ((flags & TcpFlag.Rst) !== 0 && this.#rst === undefined) {
      this.#rst = direction;
      this.#closeNs = timestampNs;
    }
  }

  #count(
    before: { duplicateBytes: number; gapBytes: number; bufferOverflows: number },
    r: StreamReassembler,
  ): void {
    const c = this.#options.counters;
    c.duplicateBytes += r.counters.duplicateBytes - before.duplicateBytes;
    c.gapBytes += r.counters.gapBytes - before.gapBytes;
    c.bufferOverflows += r.counters.bufferOverflows - before.bufferOverflows;
  }

  #tcpOptionsSeen(): TcpOptionsSeen {
    const c = this.#dirs[Direction.ClientToServer];
    const s = this.#dirs[Direction.ServerToClient];
    const both = (pick: (o: TcpOptions) => boolean): boolean | undefined => {
      if (c.synOptions === undefined && s.synOptions === undefined) return undefined;
      // Negotiated options count only when every SYN seen offered them.
      return (
        (c.synOptions === undefined || pick(c.synOptions)) &&
        (s.synOptions === undefined || pick(s.synOptions))
      );
    };
    const seen: { -readonly [K in keyof TcpOptionsSeen]: TcpOptionsSeen[K] } = {};
    if (c.synOptions?.mss !== undefined) seen.clientMss = c.synOptions.mss;
    if (s.synOptions?.mss !== undefined) seen.serverMss = s.synOptions.mss;
    if (c.synOptions?.windowScale !== undefined) seen.clientWindowScale = c.synOptions.windowScale;
    if (s.synOptions?.windowScale !== undefined) seen.serverWindowScale = s.synOptions.windowScale;
    const sack = both((o) => o.sackPermitted);
    if (sack !== undefined) seen.sackPermitted = sack;
    const timestamps = both((o) => o.timestamps !== undefined);
    if (timestamps !== undefined) seen.timestamps = timestamps;
    if (c.isn !== undefined) seen.clientIsn = c.isn;
    if (s.isn !== undefined) seen.serverIsn = s.isn;
    return seen;
  }

  /** Emits the conn-open record, once. */
  #open(): void {
    if (this.#opened) return;
    this.#opened = true;
    const record: ConnOpenRecord = {
      type: "conn-open",
      connId: this.connId,
      timestampNs: this.firstNs,
      transport: Transport.Tcp,
      ipVersion: this.#options.ipVersion,
      client: this.client,
      server: this.server,
      midstream: this.midstream,
      tcp: this.#tcpOptionsSeen(),
      attributes: this.#options.attributes,
    };
    this.#options.emit(record);
  }

  /**
   * Emits everything still held (holes left as gaps) and the conn-close record. The reason is RST or FIN
   * when one was seen (the first of them decides the initiator), else `fallback` (the connection timed
   * out, was evicted, or the capture ended).
   */
  finish(fallback: CloseReason): void {
    if (this.#finished) return;
    this.#open();
    for (const dir of this.#dirs) {
      const before = { ...dir.reassembler.counters };
      dir.reassembler.finish();
      this.#count(before, dir.reassembler);
    }
    this.#finished = true;
    const by = this.#rst ?? this.#firstFin;
    const initiator =
      by === undefined
        ? CloseInitiator.Unknown
        : by === Direction.ClientToServer
          ? CloseInitiator.Client
          : CloseInitiator.Server;
    this.#options.emit({
      type: "conn-close",
      connId: this.connId,
      timestampNs: this.#closeNs ?? this.lastNs,
      reason:
        this.#rst !== undefined ? CloseReason.Rst : this.#firstFin !== undefined ? CloseReason.Fin : fallback,
      initiator,
      bytesClientToServer: this.#dirs[Direction.ClientToServer].bytes,
      bytesServerToClient: this.#dirs[Direction.ServerToClient].bytes,
    });
  }
}
