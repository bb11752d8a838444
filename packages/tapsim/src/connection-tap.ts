/**
 * The tapper's view of one connection: it turns the bytes the relay sees into CTAP records stamped with the
 * connection's virtual clock.
 *
 * Virtual time: the connection opens at its planned start; a TCP handshake costs one round trip; every byte
 * costs `nsPerByte` (the record's `spanNs` is the time its bytes took); when the direction of the flow turns,
 * the clock moves by a server response time plus a round trip (client to server then back) or by the client's
 * turnaround (server to client then back); the client adds think time between requests through `advance`.
 * The clock never goes back, so it is a lower bound of every record the connection will still produce.
 */
import {
  type CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  Direction,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { ByteTally } from "./byte-tally.js";
import type { ConnectionPlan } from "./connection-plan.js";

/** Where the records go; implemented by the blob recorder. The payloads handed over are never reused. */
export interface TapSink {
  record(tapperId: string, record: TapRecord): void;
}

/** A tapper cuts data records at this many payload bytes (a few segments' worth, as GRO would deliver). */
export const MAX_DATA_RECORD_BYTES = 16 * 1024;

/** UDP flows end when the tapper has seen nothing for this long. */
export const UDP_IDLE_TIMEOUT_NS = 30_000_000_000n;

export interface TapCloseInfo {
  readonly reason: CloseReason;
  readonly initiator: CloseInitiator;
  readonly timestampNs: bigint;
}

export class TapStateError extends Error {
  override readonly name = "TapStateError";
}

export class ConnectionTap {
  /** The bytes as they left each host, per direction (for UDP: the datagram payloads, concatenated). */
  readonly raw = { c2s: new ByteTally(), s2c: new ByteTally() } as const;
  readonly datagrams = { c2s: 0, s2c: 0 };
  /** Tapper ids that received records, in order of first use. */
  readonly tappersUsed: string[] = [];
  private clock: bigint;
  private lastDirection: Direction | undefined;
  private wasOpened = false;
  private closeInfo: TapCloseInfo | undefined;

  constructor(
    readonly plan: ConnectionPlan,
    private readonly sink: TapSink,
  ) {
    this.clock = plan.startNs;
  }

  /** The connection's virtual time: no record it produces from now on is older. */
  get clockNs(): bigint {
    return this.clock;
  }

  /** True once `open()` was called (and still after `close()`). */
  get opened(): boolean {
    return this.wasOpened;
  }

  get isOpen(): boolean {
    return this.wasOpened && this.closeInfo === undefined;
  }

  get closed(): TapCloseInfo | undefined {
    return this.closeInfo;
  }

  private get transport(): Transport {
    return this.plan.protocol === "dns" ? Transport.Udp : Transport.Tcp;
  }

  private tapper(): string {
    const p = this.plan;
    const seen = this.raw.c2s.length + this.raw.s2c.length;
    const id =
      p.tapperSwitchAtBytes !== undefined && seen >= p.tapperSwitchAtBytes && p.tapperIds[1] !== undefined
        ? p.tapperIds[1]
        : p.tapperIds[0]!;
    if (!this.tappersUsed.includes(id)) this.tappersUsed.push(id);
    return id;
  }

  private emit(record: TapRecord): void {
    this.sink.record(this.tapper(), record);
  }

  open(): void {
    if (this.wasOpened) throw new TapStateError(`connection ${this.plan.connId} opened twice`);
    this.wasOpened = true;
    const p = this.plan;
    const record: ConnOpenRecord = {
      type: "conn-open",
      connId: p.connId,
      timestampNs: p.startNs,
      transport: this.transport,
      ipVersion: p.ipVersion,
      client: p.client,
      server: p.server,
      midstream: false,
      tcp: p.tcp ?? {},
      attributes: p.attributes,
    };
    this.emit(record);
    if (this.transport === Transport.Tcp) {
      // SYN now, SYN-ACK one round trip later, then the client's ACK and first bytes.
      this.clock += BigInt(p.timing.rttNs + p.timing.clientTurnaroundNs);
    }
  }

  private turn(direction: Direction): void {
    if (this.lastDirection !== undefined && this.lastDirection !== direction) {
      const t = this.plan.timing;
      this.clock += BigInt(
        direction === Direction.ServerToClient ? t.rttNs + t.serverTimeNs : t.clientTurnaroundNs,
      );
    }
    this.lastDirection = direction;
  }

  private checkOpen(what: string): void {
    if (!this.isOpen) throw new TapStateError(`${what} on connection ${this.plan.connId}, which is not open`);
  }

  /** Bytes of a TCP stream, in the order they passed the tapper. */
  data(direction: Direction, chunk: Uint8Array): void {
    this.checkOpen("data");
    if (chunk.length === 0) return;
    this.turn(direction);
    const tally = direction === Direction.ClientToServer ? this.raw.c2s : this.raw.s2c;
    for (let at = 0; at < chunk.length; at += MAX_DATA_RECORD_BYTES) {
      const payload = chunk.subarray(at, Math.min(chunk.length, at + MAX_DATA_RECORD_BYTES));
      const spanNs = Math.round(payload.length * this.plan.timing.nsPerByte);
      this.emit({
        type: "data",
        connId: this.plan.connId,
        direction,
        offset: tally.length,
        timestampNs: this.clock,
        spanNs,
        payload,
      });
      tally.update(payload);
      this.clock += BigInt(spanNs);
    }
  }

  /** One UDP datagram. */
  datagram(direction: Direction, payload: Uint8Array): void {
    this.checkOpen("datagram");
    this.turn(direction);
    const c2s = direction === Direction.ClientToServer;
    const index = c2s ? this.datagrams.c2s++ : this.datagrams.s2c++;
    this.emit({
      type: "datagram",
      connId: this.plan.connId,
      direction,
      index,
      timestampNs: this.clock,
      payload,
    });
    (c2s ? this.raw.c2s : this.raw.s2c).update(payload);
    this.clock += BigInt(Math.round(payload.length * this.plan.timing.nsPerByte));
  }

  /** Virtual time passing with nothing on the wire (think time). */
  advance(ns: number): void {
    if (ns > 0) this.clock += BigInt(Math.round(ns));
  }

  close(reason: CloseReason, initiator: CloseInitiator): TapCloseInfo {
    if (this.closeInfo) return this.closeInfo;
    if (!this.wasOpened) throw new TapStateError(`connection ${this.plan.connId} closed before it opened`);
    // FIN/ACK or RST takes half a round trip to be answered; a UDP flow ends at the tapper's idle timeout.
    this.clock +=
      reason === CloseReason.Timeout ? UDP_IDLE_TIMEOUT_NS : BigInt(Math.round(this.plan.timing.rttNs / 2));
    this.closeInfo = { reason, initiator, timestampNs: this.clock };
    this.emit({
      type: "conn-close",
      connId: this.plan.connId,
      timestampNs: this.clock,
      reason,
      initiator,
      bytesClientToServer: this.raw.c2s.length,
      bytesServerToClient: this.raw.s2c.length,
    });
    return this.closeInfo;
  }
}
