import {
  decodePacket,
  formatIpAddress,
  isMalformedPacketError,
  PacketErrorCode,
  TcpFlag,
  type TcpSegment,
  type UdpDatagram,
} from "@cloudtap/packet";
import type { CapturePacket } from "@cloudtap/pcap";
import { CloseReason, Direction, type Endpoint, type TapRecord, Transport } from "@cloudtap/tap-format";
import { deriveConnId } from "./conn-id.js";
import { flowKey, sameEndpoint } from "./flow-key.js";
import { emptySkipCounts, SkipReason, type TcpCounters } from "./summary.js";
import { TcpConnection } from "./tcp-connection.js";
import { UdpFlow } from "./udp-flow.js";

export interface ConnectionTrackerOptions {
  /** Goes into every connection id, so ids differ between captures. */
  readonly captureName: string;
  /** Identity attributes put on every conn-open record. */
  readonly attributes: Readonly<Record<string, string>>;
  /** Per TCP direction: out-of-order bytes held while a hole is open. */
  readonly maxBufferedBytes: number;
  /** Largest data record payload. */
  readonly maxChunkBytes: number;
  /** Table cap; at the cap the least recently active connection is closed (reason timeout). */
  readonly maxConnections: number;
  /** A connection with no packet for this long (capture time) is closed with reason timeout. */
  readonly idleTimeoutNs: bigint;
  /** Receives records in the order they are made. */
  readonly emit: (record: TapRecord) => void;
}

type Flow = TcpConnection | UdpFlow;

/** Idle connections are looked for at most once per second of capture time. */
const SWEEP_INTERVAL_NS = 1_000_000_000n;
/**
 * A chunk being coalesced is written once its connection has been quiet this long (capture time), checked
 * every `QUIET_CHECK_NS`: as a tapper writes a chunk soon after its last byte, so a record lands in a blob
 * no more than about 15 ms after its bytes were seen (a keep-alive connection's last response would
 * otherwise wait for the close or the idle timeout, stamped long before the blob it lands in).
 */
export const QUIET_FLUSH_NS = 10_000_000n;
const QUIET_CHECK_NS = 5_000_000n;
/**
 * How long (capture time) a TCP connection stays in the table after both FINs or a RST, for retransmissions
 * and the last ACK, before its conn-close record is written. Closing promptly lets a stitcher complete the
 * connection as the tapper's stream goes on, instead of holding it until the capture ends.
 */
export const CLOSE_LINGER_NS = 2_000_000_000n;

/**
 * Turns decoded packets into connections and their records. Time is the capture's: idle timeouts are
 * measured in packet timestamps, never the wall clock, so ingesting a capture twice gives the same records.
 *
 * Which side is the client: the sender of a SYN (or the receiver of a SYN-ACK); for a TCP connection first
 * seen mid-stream, the side with the higher port (equal ports: the first sender); for UDP, the first sender.
 * A SYN whose ISN differs from the connection's known client ISN starts a new connection on the same
 * 5-tuple (port reuse) after closing the old one.
 */
export class ConnectionTracker {
  readonly #options: ConnectionTrackerOptions;
  /** In order of last activity, least recent first (entries are re-inserted on every packet). */
  readonly #flows = new Map<string, Flow>();
  #nowNs: bigint | undefined;
  #lastSweepNs = 0n;
  #lastQuietCheckNs = 0n;
  /** Connections with a chunk being coalesced, least recently active first. */
  readonly #withPending = new Set<TcpConnection>();
  readonly skipped = emptySkipCounts();
  readonly tcp: TcpCounters = {
    duplicateBytes: 0,
    gapBytes: 0,
    bufferOverflows: 0,
    beforeStreamStartBytes: 0,
    truncatedSegments: 0,
    badOptions: 0,
    afterCloseSegments: 0,
    afterCloseBytes: 0,
  };
  tcpConnections = 0;
  udpConnections = 0;
  midstreamConnections = 0;
  evicted = 0;
  idleTimeouts = 0;

  constructor(options: ConnectionTrackerOptions) {
    this.#options = options;
  }

  /** Handles one captured packet; `index` is its position in the capture (0-based). */
  handlePacket(packet: CapturePacket, index: number): void {
    const ts = packet.timestampNs;
    if (this.#nowNs === undefined || ts > this.#nowNs) this.#nowNs = ts;
    if (this.#nowNs - this.#lastSweepNs >= SWEEP_INTERVAL_NS) {
      this.#lastSweepNs = this.#nowNs;
      this.#sweep(this.#nowNs);
    }
    if (this.#nowNs - this.#lastQuietCheckNs >= QUIET_CHECK_NS) {
      this.#lastQuietCheckNs = this.#nowNs;
      this.#flushQuiet(this.#nowNs - QUIET_FLUSH_NS);
    }

    let decoded: ReturnType<typeof decodePacket>;
    try {
      decoded = decodePacket(packet.linkType, packet.data);
    } catch (err) {
      if (!isMalformedPacketError(err)) throw err;
      this.skipped[
        err.code === PacketErrorCode.UnsupportedLinkType
          ? SkipReason.UnsupportedLinkType
          : SkipReason.Malformed
      ]++;
      return;
    }
    const { ip, transport } = decoded;
    if (ip === undefined) {
      this.skipped[SkipReason.NotIp]++;
      return;
    }
    if (decoded.fragment) {
      this.skipped[SkipReason.IpFragment]++;
      return;
    }
    if (transport === undefined) {
      this.skipped[SkipReason.OtherProtocol]++;
      return;
    }
    const sourceAddress = formatIpAddress(ip.source);
    const destinationAddress = formatIpAddress(ip.destination);
    if (transport.protocol === "tcp") {
      const segment = transport.segment;
      const source = { address: sourceAddress, port: segment.sourcePort };
      const destination = { address: destinationAddress, port: segment.destinationPort };
      this.#tcp(segment, source, destination, ip.version, ts, index, ip.truncated);
    } else {
      const datagram = transport.datagram;
      if (datagram.truncated || ip.truncated) {
        this.skipped[SkipReason.TruncatedDatagram]++;
        return;
      }
      const source = { address: sourceAddress, port: datagram.sourcePort };
      const destination = { address: destinationAddress, port: datagram.destinationPort };
      this.#udp(datagram, source, destination, ip.version, ts, index);
    }
  }

  #tcp(
    segment: TcpSegment,
    source: Endpoint,
    destination: Endpoint,
    ipVersion: 4 | 6,
    ts: bigint,
    index: number,
    truncated: boolean,
  ): void {
    const key = flowKey(Transport.Tcp, source, destination);
    const syn = (segment.flags & TcpFlag.Syn) !== 0;
    const ack = (segment.flags & TcpFlag.Ack) !== 0;
    let conn = this.#flows.get(key);
    if (conn instanceof TcpConnection && syn && !ack && conn.clientIsn !== segment.sequenceNumber) {
      // A new SYN on a known 5-tuple: the old connection is over, whatever state it was left in.
      conn.finish(CloseReason.Timeout);
      this.#flows.delete(key);
      conn = undefined;
    }
    if (!(conn instanceof TcpConnection)) {
      let client: Endpoint;
      if (syn) client = ack ? destination : source;
      else if (source.port !== destination.port)
        client = source.port > destination.port ? source : destination;
      else client = source;
      const server = client === source ? destination : source;
      conn = new TcpConnection({
        connId: deriveConnId(this.#options.captureName, Transport.Tcp, client, server, index),
        client,
        server,
        ipVersion,
        timestampNs: ts,
        midstream: !syn,
        attributes: this.#options.attributes,
        maxBufferedBytes: this.#options.maxBufferedBytes,
        maxChunkBytes: this.#options.maxChunkBytes,
        emit: this.#options.emit,
        counters: this.tcp,
      });
      this.#insert(key, conn);
      this.tcpConnections++;
      if (!syn) this.midstreamConnections++;
    } else {
      this.#touch(key, conn);
    }
    const direction = sameEndpoint(source, conn.client) ? Direction.ClientToServer : Direction.ServerToClient;
    // `truncated`: the IP header says more bytes than were captured, so the payload is cut (maybe to 0 bytes).
    conn.handle(direction, segment, segment.payload, ts, truncated);
    this.#withPending.delete(conn);
    if (conn.hasPendingChunk) this.#withPending.add(conn);
    if (conn.closed && !conn.finished) {
      this.#closing.set(key, conn);
      // Written at once unless a hole may still fill: a conn-close written at the end of the linger is
      // stamped seconds before the blob it lands in, and the stitcher's time order cannot place it. The
      // connection stays in the table for the linger, to absorb retransmissions and the last ACK.
      if (!conn.waitingForHoles) conn.finish(CloseReason.Fin);
    }
  }

  #udp(
    datagram: UdpDatagram,
    source: Endpoint,
    destination: Endpoint,
    ipVersion: 4 | 6,
    ts: bigint,
    index: number,
  ): void {
    const key = flowKey(Transport.Udp, source, destination);
    let flow = this.#flows.get(key);
    if (!(flow instanceof UdpFlow)) {
      flow = new UdpFlow({
        connId: deriveConnId(this.#options.captureName, Transport.Udp, source, destination, index),
        client: source,
        server: destination,
        ipVersion,
        timestampNs: ts,
        attributes: this.#options.attributes,
        emit: this.#options.emit,
      });
      this.#insert(key, flow);
      this.udpConnections++;
    } else {
      this.#touch(key, flow);
    }
    const direction = sameEndpoint(source, flow.client) ? Direction.ClientToServer : Direction.ServerToClient;
    flow.handle(direction, datagram.payload, ts);
  }

  #insert(key: string, flow: Flow): void {
    while (this.#flows.size >= this.#options.maxConnections) {
      const oldest = this.#flows.entries().next();
      if (oldest.done) break;
      const [oldKey, oldFlow] = oldest.value;
      this.#flows.delete(oldKey);
      oldFlow.finish(CloseReason.Timeout);
      this.evicted++;
    }
    this.#flows.set(key, flow);
  }

  #touch(key: string, flow: Flow): void {
    this.#flows.delete(key);
    this.#flows.set(key, flow);
  }

  /** Writes the chunks of connections quiet since `beforeNs`. */
  #flushQuiet(beforeNs: bigint): void {
    for (const conn of this.#withPending) {
      if (conn.lastNs > beforeNs) break;
      this.#withPending.delete(conn);
      conn.flushPending();
    }
  }

  /** Connections that saw both FINs or a RST, waiting out `CLOSE_LINGER_NS` before they are closed. */
  readonly #closing = new Map<string, TcpConnection>();

  /**
   * Closes connections that ended (FIN both ways, or RST) at least `CLOSE_LINGER_NS` ago, then flows idle for
   * longer than the timeout; the flow map is in activity order, so the idle scan stops early.
   */
  #sweep(nowNs: bigint): void {
    for (const [key, conn] of this.#closing) {
      if (nowNs - conn.lastNs < CLOSE_LINGER_NS) continue;
      this.#closing.delete(key);
      if (this.#flows.get(key) !== conn) continue; // already closed another way
      this.#flows.delete(key);
      conn.finish(CloseReason.Fin); // FIN or RST as seen (no-op when written at the close already)
    }
    for (const [key, flow] of this.#flows) {
      if (nowNs - flow.lastNs <= this.#options.idleTimeoutNs) break;
      this.#flows.delete(key);
      flow.finish(CloseReason.Timeout);
      this.idleTimeouts++;
    }
  }

  /** Closes every connection still open (the capture ended): reason FIN/RST when seen, else `reason`. */
  finishAll(reason: CloseReason): void {
    this.#withPending.clear();
    for (const flow of this.#flows.values()) flow.finish(reason);
    this.#flows.clear();
    this.#closing.clear();
  }
}
