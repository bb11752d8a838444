/**
 * The stitch stage as a library: tapped records in, synthesized packets out.
 *
 *   records -> FlowTable (order by offset, de-duplicate, gaps, caps, timeouts)
 *           -> per flow: both directions merged by record time
 *           -> TcpSynth / UdpSynth -> FrameSink (a pcap(ng) encoder, a tunnel sender)
 *
 * Directions are merged by timestamp: an event of one direction is emitted once the other direction has
 * reached its time (its next event can only be later), once it is `reorderWindowNs` older than the newest
 * record seen, when the flow's held bytes pass `maxHeldBytesPerFlow`, or when the flow completes. In-order
 * input therefore leaves in request/response order even when the two directions' records were stored apart.
 */
import {
  createFlowFilter,
  type FlowCompletion,
  type FlowFilter,
  type FlowInfo,
  type FlowStream,
  FlowTable,
  type FlowTableOptions,
} from "@cloudtap/flow";
import type { FrameSink } from "@cloudtap/packet";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  parseIp,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { DirectionTemplate, type Endpoints, hash32, type LinkOptions } from "./frame-writer.js";
import { TcpSynth, TcpSynthStats } from "./tcp-synth.js";
import { UdpSynth, UdpSynthStats } from "./udp-synth.js";

export interface StitcherOptions {
  readonly sink: FrameSink;
  /** Link MTU (the largest IP packet on the NDR's link). Default 1500. */
  readonly mtu?: number;
  /** Bytes the caller's encapsulation adds inside the MTU (e.g. 50 for VXLAN over IPv4). Default 0. */
  readonly encapsulationBytes?: number;
  readonly link?: LinkOptions;
  /** Flow selection rules (see @cloudtap/flow createFlowFilter). Default: every flow. */
  readonly filter?: FlowFilter | readonly string[];
  /** Close a connection that ended by timeout (or the input's end) with a synthetic FIN exchange. Default true. */
  readonly finOnTimeout?: boolean;
  readonly reorderWindowNs?: bigint;
  readonly maxHeldBytesPerFlow?: number;
  readonly flowTable?: FlowTableOptions;
  /** Called once per flow, after its last packet. */
  readonly onFlowComplete?: (flow: StitchedFlow) => void;
}

export const DEFAULT_MTU = 1500;
export const DEFAULT_REORDER_WINDOW_NS = 500_000_000n;
export const DEFAULT_MAX_HELD_BYTES_PER_FLOW = 1024 * 1024;

export interface StitchedFlow {
  readonly connId: string;
  readonly open: ConnOpenRecord;
  readonly completion: FlowCompletion;
  readonly packets: number;
}

export class StitcherStats {
  flowsTcp = 0;
  flowsUdp = 0;
  /** Flows the filter rejected. */
  flowsFiltered = 0;
  /** Flows whose conn-open never arrived: no endpoints to build packets with. */
  flowsWithoutOpen = 0;
  readonly tcp = new TcpSynthStats();
  readonly udp = new UdpSynthStats();
  /** Events held to merge directions by time, and bytes copied for it. */
  heldEvents = 0;
  heldBytes = 0;
  get packets(): number {
    return this.tcp.packets + this.udp.packets;
  }
}

interface HeldEvent {
  readonly dir: 0 | 1;
  readonly ts: bigint;
  /** Data (copied), or undefined for a gap of `length` bytes. */
  readonly bytes: Uint8Array | undefined;
  readonly length: number;
  readonly spanNs: number;
}

class FlowOutput implements FlowStream {
  private readonly held: [HeldEvent[], HeldEvent[]] = [[], []];
  private heldBytes = 0;
  /** Latest record time released by the flow table per direction. */
  private readonly front: [bigint, bigint] = [-1n, -1n];
  private lastTs: bigint;
  private readonly packetsAtStart: number;

  constructor(
    private readonly stitcher: Stitcher,
    readonly open: ConnOpenRecord,
    private readonly tcp: TcpSynth | undefined,
    private readonly udp: UdpSynth | undefined,
  ) {
    this.lastTs = open.timestampNs;
    this.packetsAtStart = stitcher.stats.packets;
    if (tcp && !open.midstream) tcp.handshake(open.timestampNs);
  }

  get holding(): boolean {
    return this.held[0].length > 0 || this.held[1].length > 0;
  }

  onData(direction: 0 | 1, _offset: number, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void {
    this.event(direction, timestampNs, bytes, bytes.length, spanNs);
  }

  onGap(direction: 0 | 1, _offset: number, length: number, timestampNs: bigint): void {
    this.event(direction, timestampNs, undefined, length, 0);
  }

  onDatagram(direction: 0 | 1, _index: number, bytes: Uint8Array, timestampNs: bigint): void {
    if (timestampNs > this.lastTs) this.lastTs = timestampNs;
    this.udp?.datagram(direction, bytes, timestampNs);
  }

  private event(dir: 0 | 1, ts: bigint, bytes: Uint8Array | undefined, length: number, spanNs: number): void {
    if (!this.tcp) return;
    if (ts > this.front[dir]) this.front[dir] = ts;
    const other = (1 - dir) as 0 | 1;
    // Fast path: nothing held and the other direction is already past this time.
    if (!this.holding && ts <= this.front[other]) {
      this.emit({ dir, ts, bytes, length, spanNs });
      return;
    }
    const copy = bytes?.slice();
    this.held[dir].push({ dir, ts, bytes: copy, length, spanNs });
    this.heldBytes += copy?.length ?? 0;
    this.stitcher.stats.heldEvents++;
    this.stitcher.stats.heldBytes += copy?.length ?? 0;
    this.stitcher.holding.add(this);
    this.release(undefined);
  }

  /** Emits held events in time order while the rule allows; `force` releases those at or before it. */
  release(upTo: bigint | undefined, all = false): void {
    for (;;) {
      const a = this.held[0][0];
      const b = this.held[1][0];
      if (!a && !b) break;
      const next = !b || (a && a.ts <= b.ts) ? a! : b;
      const other = (1 - next.dir) as 0 | 1;
      const ok =
        all ||
        next.ts <= this.front[other] ||
        (upTo !== undefined && next.ts <= upTo) ||
        this.heldBytes > this.stitcher.maxHeldBytesPerFlow;
      if (!ok) break;
      this.held[next.dir].shift();
      this.heldBytes -= next.bytes?.length ?? 0;
      this.emit(next);
    }
    if (!this.holding) this.stitcher.holding.delete(this);
  }

  private emit(e: HeldEvent): void {
    const tcp = this.tcp!;
    const end = e.ts + BigInt(e.spanNs);
    if (end > this.lastTs) this.lastTs = end;
    if (e.bytes) tcp.data(e.dir, e.bytes, e.ts, e.spanNs);
    else tcp.gap(e.dir, e.length);
  }

  onComplete(completion: FlowCompletion): void {
    this.release(undefined, true);
    const tcp = this.tcp;
    if (tcp) {
      const c = completion.close;
      const ts = c && c.timestampNs > this.lastTs ? c.timestampNs : this.lastTs;
      const initiator = c?.initiator === CloseInitiator.Server ? 1 : 0;
      if (c?.reason === CloseReason.Fin) tcp.fin(initiator, ts);
      else if (c?.reason === CloseReason.Rst) tcp.rst(initiator, ts);
      else if (c?.reason !== CloseReason.TapperStop && this.stitcher.finOnTimeout) tcp.fin(initiator, ts);
    }
    this.stitcher.options.onFlowComplete?.({
      connId: this.open.connId,
      open: this.open,
      completion,
      packets: this.stitcher.stats.packets - this.packetsAtStart,
    });
  }
}

export class Stitcher {
  readonly stats = new StitcherStats();
  readonly table: FlowTable;
  /** Flows with events held for the direction merge. */
  readonly holding = new Set<FlowOutput>();
  readonly maxHeldBytesPerFlow: number;
  readonly finOnTimeout: boolean;
  private readonly filter: FlowFilter;
  private readonly reorderWindowNs: bigint;
  private readonly ipMtu: number;

  constructor(readonly options: StitcherOptions) {
    this.filter =
      options.filter === undefined
        ? createFlowFilter([])
        : Array.isArray(options.filter)
          ? createFlowFilter(options.filter as readonly string[])
          : (options.filter as FlowFilter);
    this.maxHeldBytesPerFlow = options.maxHeldBytesPerFlow ?? DEFAULT_MAX_HELD_BYTES_PER_FLOW;
    this.finOnTimeout = options.finOnTimeout ?? true;
    this.reorderWindowNs = options.reorderWindowNs ?? DEFAULT_REORDER_WINDOW_NS;
    this.ipMtu = (options.mtu ?? DEFAULT_MTU) - (options.encapsulationBytes ?? 0);
    if (this.ipMtu < 68)
      throw new RangeError(`MTU ${options.mtu} minus encapsulation leaves ${this.ipMtu} bytes for IP`);
    this.table = new FlowTable({ create: (flow) => this.create(flow) }, options.flowTable ?? {});
  }

  accept(record: TapRecord): void {
    this.table.accept(record);
  }

  /** Timeouts, gap waits and the direction merge at record time `now` (default: the newest record seen). */
  flushOlderThan(now: bigint = this.table.now): void {
    this.table.flushOlderThan(now);
    const upTo = now - this.reorderWindowNs;
    for (const f of [...this.holding]) f.release(upTo);
  }

  /** The input ended: every flow completes. */
  flushAll(): void {
    this.table.flushAll();
  }

  private create(flow: FlowInfo): FlowStream | undefined {
    const open = flow.open;
    if (!open) {
      this.stats.flowsWithoutOpen++;
      return undefined;
    }
    if (!this.filter.decide(open).accept) {
      this.stats.flowsFiltered++;
      return undefined;
    }
    const ep: Endpoints = {
      ipVersion: open.ipVersion,
      clientAddress: parseIp(open.client.address)!,
      serverAddress: parseIp(open.server.address)!,
      clientPort: open.client.port,
      serverPort: open.server.port,
    };
    const tcp = open.transport === Transport.Tcp;
    const link = this.options.link ?? {};
    const label = hash32(open.connId, 7);
    const templates = [
      new DirectionTemplate(ep, true, tcp ? 6 : 17, link, label),
      new DirectionTemplate(ep, false, tcp ? 6 : 17, link, label ^ 0x5555),
    ] as const;
    const ipIds = [hash32(open.connId, 1) & 0xffff, hash32(open.connId, 2) & 0xffff] as const;
    if (tcp) {
      this.stats.flowsTcp++;
      const t = open.tcp;
      const synth = new TcpSynth(
        this.options.sink,
        {
          templates,
          clientPort: ep.clientPort,
          serverPort: ep.serverPort,
          clientIsn: t.clientIsn ?? hash32(open.connId, 3),
          serverIsn: t.serverIsn ?? hash32(open.connId, 4),
          ipMtu: this.ipMtu,
          ipIds,
          handshake: {
            ...(t.clientMss === undefined ? {} : { clientMss: t.clientMss }),
            ...(t.serverMss === undefined ? {} : { serverMss: t.serverMss }),
            ...(t.clientWindowScale === undefined ? {} : { clientWindowScale: t.clientWindowScale }),
            ...(t.serverWindowScale === undefined ? {} : { serverWindowScale: t.serverWindowScale }),
            ...(t.sackPermitted ? { sackPermitted: true } : {}),
          },
        },
        this.stats.tcp,
      );
      return new FlowOutput(this, open, synth, undefined);
    }
    this.stats.flowsUdp++;
    const synth = new UdpSynth(
      this.options.sink,
      { templates, clientPort: ep.clientPort, serverPort: ep.serverPort, ipMtu: this.ipMtu, ipIds },
      this.stats.udp,
    );
    return new FlowOutput(this, open, undefined, synth);
  }
}
