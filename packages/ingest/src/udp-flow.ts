import {
  CloseInitiator,
  type CloseReason,
  Direction,
  type Endpoint,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";

export interface UdpFlowOptions {
  readonly connId: string;
  /** The sender of the first datagram seen. */
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly ipVersion: 4 | 6;
  readonly timestampNs: bigint;
  readonly attributes: Readonly<Record<string, string>>;
  readonly emit: (record: TapRecord) => void;
}

/**
 * One UDP 5-tuple as a connection: a conn-open at the first datagram, one datagram record per datagram
 * (numbered per direction), and a conn-close from `finish`. UDP has no close, so the reason is always the
 * caller's (idle timeout, eviction, end of capture) and the initiator unknown.
 */
export class UdpFlow {
  readonly connId: string;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly firstNs: bigint;
  lastNs: bigint;
  readonly #emit: (record: TapRecord) => void;
  readonly #index: [number, number] = [0, 0];
  readonly #bytes: [number, number] = [0, 0];
  #finished = false;

  constructor(options: UdpFlowOptions) {
    this.connId = options.connId;
    this.client = options.client;
    this.server = options.server;
    this.firstNs = options.timestampNs;
    this.lastNs = options.timestampNs;
    this.#emit = options.emit;
    this.#emit({
      type: "conn-open",
      connId: options.connId,
      timestampNs: options.timestampNs,
      transport: Transport.Udp,
      ipVersion: options.ipVersion,
      client: options.client,
      server: options.server,
      midstream: false,
      tcp: {},
      attributes: options.attributes,
    });
  }

  /** Emits one datagram record. The payload is copied: the record outlives the capture chunk. */
  handle(direction: Direction, payload: Uint8Array, timestampNs: bigint): void {
    if (this.#finished) throw new Error("UdpFlow: datagram after finish");
    if (timestampNs > this.lastNs) this.lastNs = timestampNs;
    const index = this.#index[direction];
    this.#index[direction] = index + 1;
    this.#bytes[direction] += payload.length;
    this.#emit({
      type: "datagram",
      connId: this.connId,
      direction,
      index,
      timestampNs,
      payload: payload.slice(),
    });
  }

  finish(reason: CloseReason): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#emit({
      type: "conn-close",
      connId: this.connId,
      timestampNs: this.lastNs,
      reason,
      initiator: CloseInitiator.Unknown,
      bytesClientToServer: this.#bytes[Direction.ClientToServer],
      bytesServerToClient: this.#bytes[Direction.ServerToClient],
    });
  }
}
