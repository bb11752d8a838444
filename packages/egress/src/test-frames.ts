/**
 * Test helpers (not part of the package's API): flow contexts and Ethernet frames built with
 * @cloudtap/packet's builders, and a transport that keeps what it is given.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import {
  buildEthernetFrame,
  buildIpPacket,
  buildTcpSegment,
  buildUdpDatagram,
  parseIpAddress,
} from "@cloudtap/packet";
import type { DatagramBatch, DatagramTransport, TransportTargetStats } from "./datagram-batch.js";
import { emptyTransportStats } from "./datagram-batch.js";

export function flowContext(overrides: Partial<FrameFlowContext> = {}): FrameFlowContext {
  return {
    connId: "00112233445566778899aabbccddeeff",
    variant: "original",
    transport: "tcp",
    ipVersion: 4,
    client: { address: "10.1.2.3", port: 50123 },
    server: { address: "192.0.2.10", port: 443 },
    attributes: { user: "alice@example.com", tenant: "acme", app: "web" },
    ...overrides,
  };
}

export interface FrameSpec {
  readonly src: string;
  readonly dst: string;
  readonly sport: number;
  readonly dport: number;
  readonly proto?: "tcp" | "udp";
  readonly payload?: Uint8Array;
}

/** An Ethernet/IP/TCP|UDP frame with correct checksums. */
export function frame(spec: FrameSpec): Uint8Array {
  const src = parseIpAddress(spec.src);
  const dst = parseIpAddress(spec.dst);
  const payload = spec.payload ?? new Uint8Array(0);
  const transport =
    (spec.proto ?? "tcp") === "tcp"
      ? buildTcpSegment({
          sourceAddress: src,
          destinationAddress: dst,
          sourcePort: spec.sport,
          destinationPort: spec.dport,
          sequenceNumber: 1000,
          acknowledgmentNumber: 2000,
          flags: 0x18,
          payload,
        })
      : buildUdpDatagram({
          sourceAddress: src,
          destinationAddress: dst,
          sourcePort: spec.sport,
          destinationPort: spec.dport,
          payload,
        });
  const ip = buildIpPacket(src, dst, (spec.proto ?? "tcp") === "tcp" ? 6 : 17, transport);
  return buildEthernetFrame({ etherType: src.length === 4 ? 0x0800 : 0x86dd, payload: ip });
}

/** Both directions of a flow context's connection, as frames. */
export function framesOf(flow: FrameFlowContext, payload = new Uint8Array(0)): [Uint8Array, Uint8Array] {
  const proto = flow.transport;
  return [
    frame({
      src: flow.client.address,
      dst: flow.server.address,
      sport: flow.client.port,
      dport: flow.server.port,
      proto,
      payload,
    }),
    frame({
      src: flow.server.address,
      dst: flow.client.address,
      sport: flow.server.port,
      dport: flow.client.port,
      proto,
      payload,
    }),
  ];
}

export interface SentDatagram {
  readonly target: number;
  readonly slot: number;
  readonly bytes: Uint8Array;
}

/** A transport that records every datagram (copied), synchronously or, with `async`, on a later tick. */
export class MemoryTransport implements DatagramTransport {
  readonly mechanism = "memory";
  readonly sent: SentDatagram[] = [];
  private readonly counters: TransportTargetStats[] = [];
  /** Targets whose datagrams are refused with this code. */
  readonly refuse = new Map<number, string>();

  constructor(
    readonly slots = 4,
    private readonly async = false,
  ) {}

  private stat(target: number): TransportTargetStats {
    let s = this.counters[target];
    if (!s) {
      s = emptyTransportStats();
      this.counters[target] = s;
    }
    return s;
  }

  send(batch: DatagramBatch, from: number, to: number): void | Promise<void> {
    const take = () => {
      const st = this.stat(batch.target);
      for (let i = from; i < to; i++) {
        const code = this.refuse.get(batch.target);
        if (code !== undefined) {
          st.errors[code] = (st.errors[code] ?? 0) + 1;
          st.lastError = code;
          continue;
        }
        const at = batch.offsets[i]!;
        const bytes = batch.bytes.slice(at, at + batch.lengths[i]!);
        this.sent.push({ target: batch.target, slot: batch.slots[i]!, bytes });
        st.datagrams++;
        st.bytes += bytes.length;
      }
    };
    if (!this.async) {
      take();
      return;
    }
    return new Promise((resolve) =>
      setImmediate(() => {
        take();
        resolve();
      }),
    );
  }

  stats(target: number): TransportTargetStats {
    return this.stat(target);
  }

  sourcePorts(target: number): readonly number[] {
    return Array.from({ length: this.slots }, (_, i) => 40000 + 100 * target + i);
  }

  async close(): Promise<void> {}
}

/** A clock the test moves by hand; timers fire when `advance` passes them. */
export class ManualClock {
  private t = 0;
  private timers: { at: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((x) => x !== timer);
    };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }

  get pendingTimers(): number {
    return this.timers.length;
  }
}
