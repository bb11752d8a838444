/**
 * The stitch stage as a library: tapped records in, synthesized packets out.
 *
 *   records -> FlowTable (order by offset, de-duplicate, gaps, caps, timeouts)
 *           -> per flow: both directions merged by record time
 *           -> TcpSynth / UdpSynth -> FrameSink (a pcap(ng) encoder, a tunnel sender)
 *
 * Direction order: a tapper writes records in the order it saw the bytes, so records that arrive in order
 * already interleave the two directions by time, and they are emitted as they are released (no copy). Bytes
 * the flow table releases ahead of the reading (records that waited behind a hole, or for their conn-open,
 * released at once when it is filled: stamped later than the record being read) would come before the other
 * direction's records of the same time span, not read yet; such an event is held (copied) until the other
 * direction has reached its time, the reading has, the watermark has (`noRecordsBefore` less the longest
 * span, or `flushOlderThan`'s time), the flow's held bytes pass `maxHeldBytesPerFlow`, or the flow completes.
 * When the input may be out of order across blobs in general (the mesh: batches of one connection in any
 * order), `reorderWindowNs` turns on a merge of every event by timestamp: an event of one direction is held
 * until the other direction has reached its time, it is `reorderWindowNs` older than the newest record
 * seen, or the same caps. Events emitted against time order are counted (`outOfOrderEvents`).
 */
import {
  createFlowFilter,
  type FlowCompletion,
  type FlowFilter,
  type FlowHoles,
  type FlowInfo,
  type FlowStream,
  FlowTable,
  type FlowTableOptions,
} from "@cloudtap/flow";
import { type FrameFlowContext, type FrameSink, isFlowAware, parseIpAddress } from "@cloudtap/packet";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  type Endpoint,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import type { TlsKeySource } from "@cloudtap/tls";
import { StitchSettingsError } from "./errors.js";
import { type Endpoints, FlowTemplates, hash32, type LinkOptions, TemplateArena } from "./frame-writer.js";
import { saneMss } from "./sane-mss.js";
import { TcpSynth, TcpSynthStats } from "./tcp-synth.js";
import { TimeOrder, type TimeOrderOptions, TimeOrderStats } from "./time-order.js";
import {
  createCleartextPortMap,
  type TlsFlowReport,
  TlsFlowVariants,
  TlsVariantStats,
  type Variant,
} from "./tls-variant.js";
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
  /**
   * The records' payloads stay valid and unchanged after `accept` (the mesh's stitcher: each chunk message's
   * bytes are its own, kept while its connections are open): events held for the direction merge keep views
   * of them instead of copies (the merge holds most of a response's bytes). A view keeps the buffer it is
   * in: the caller's, which the mesh's stitcher keeps anyway until the message is acked, after its
   * connections are released. Default false: the flow table's bytes are only valid during the call, as for
   * a blob read in chunks.
   */
  readonly stableInput?: boolean;
  readonly maxHeldBytesPerFlow?: number;
  readonly flowTable?: FlowTableOptions;
  /** Called once per flow, after its last packet. */
  readonly onFlowComplete?: (flow: StitchedFlow) => void;
  /** TLS: which variants to write, where keys come from, where embedded keys go. Default: original only. */
  readonly tls?: StitcherTlsOptions;
  /**
   * Frames of all flows are put in time order before the sink (see time-order.ts); `false` writes them as
   * they are made (per flow in causal order, across flows in record order).
   */
  readonly timeOrder?: StitcherTimeOrderOptions | false;
}

export interface StitcherTimeOrderOptions extends TimeOrderOptions {
  /**
   * How far behind the watermark frames are still put in order, beyond the longest chunk span seen (a
   * chunk is written when its last byte is seen, so it may land in a blob that started after its first
   * byte, by up to its span): frames are released once they are `windowNs` + that span older than the
   * watermark (`noRecordsBefore`, else the newest record seen). Default 0: the span alone.
   */
  readonly windowNs?: bigint;
  /**
   * Whether the longest chunk span seen widens the window (default true). Stitchers whose outputs are
   * merged (worker threads, each seeing only its own connections' spans) need one window for all: false,
   * with a `windowNs` that covers the spans (`MERGED_TIME_ORDER`).
   */
  readonly widenBySpan?: boolean;
  /**
   * Whether the time order waits for bytes the flow table holds behind a hole (default true): they are
   * released with their own, older, times once the hole is filled or given up, and would otherwise be late,
   * so the order releases no further than the oldest of them (`FlowTable.oldestBufferedNs`). The wait is
   * bounded by `maxBytes`. False for merged stitchers (each has its own holes).
   */
  readonly waitForHoles?: boolean;
}

/**
 * The time order of stitchers whose outputs are merged by time: the same window in each (1 s, for chunks
 * spanning up to that before their blob's start), driven by the blobs' start times only.
 */
export const MERGED_TIME_ORDER: StitcherTimeOrderOptions = {
  windowNs: 1_000_000_000n,
  widenBySpan: false,
  waitForHoles: false,
};

/**
 * Default margin of the time-order window (record time), beyond the longest chunk span seen: room for a
 * chunk that spans longer than any seen before it (the longest seen grows as the run goes). 20 ms: with
 * none, 56 of 361,709 frames of a 295 MB ingested TLS capture were written late (up to 3 ms); with 5 ms, 4;
 * with 20 ms, none, for 3.4 MB more held at the peak (8.5 -> 11.9 MB).
 */
export const DEFAULT_TIME_ORDER_WINDOW_NS = 20_000_000n;

export interface StitcherTlsOptions {
  readonly keys: TlsKeySource;
  /** Default "original". */
  readonly variant?: Variant;
  /** Receives each TLS connection's key-log lines before its encrypted packets (e.g. a pcapng DSB writer). */
  readonly embedKeys?: (keyLogText: string) => void;
  /** Overrides of the cleartext port map (443 -> 80, 8443 -> 8080, ...). */
  readonly cleartextPorts?: Readonly<Record<number, number>>;
  /** Cleartext port for TLS ports the map does not name. Default 80. */
  readonly defaultCleartextPort?: number;
  /**
   * How long (record time, from the newest record seen when the connection ended) a finished connection
   * waits for keys that have not landed, before its undecryptable rest is reported as `no-keys`. Default 60 s.
   */
  readonly keyWaitNs?: bigint;
  /** Cap on one connection's ciphertext queued while it waits for keys (overflow: the rest is undecrypted). */
  readonly maxKeyWaitBytes?: number;
}

export const DEFAULT_KEY_WAIT_NS = 60_000_000_000n;

export const DEFAULT_MTU = 1500;
/** 0: no merge by timestamp; records are emitted in arrival order. */
export const DEFAULT_REORDER_WINDOW_NS = 0n;
export const DEFAULT_MAX_HELD_BYTES_PER_FLOW = 1024 * 1024;

/** Who a flow was: what of its conn-open record outlives the flow's start (the rest is not kept). */
export interface FlowIdentity {
  readonly connId: string;
  readonly transport: Transport;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface StitchedFlow {
  readonly flow: FlowIdentity;
  readonly completion: FlowCompletion;
  readonly packets: number;
  /** TLS version, suite, SNI, ALPN and decryption outcome, when the stitcher ran with TLS options. */
  readonly tls?: TlsFlowReport;
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
  readonly tls = new TlsVariantStats();
  /** Events held to merge directions by time, and bytes copied for it. */
  heldEvents = 0;
  heldBytes = 0;
  /** Events emitted earlier in time than an event of the other direction already emitted. */
  outOfOrderEvents = 0;
  /** The time-order stage: frames, late frames (written out of order), early releases at its byte cap. */
  readonly timeOrder = new TimeOrderStats();
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

/** Events of a flow held for the direction merge (made at the first one). */
class MergeState {
  readonly held: [HeldEvent[], HeldEvent[]] = [[], []];
  heldBytes = 0;
}

class FlowOutput implements FlowStream {
  readonly connId: string;
  private readonly client: Endpoint;
  private readonly server: Endpoint;
  private readonly attributes: Readonly<Record<string, string>>;
  private merge: MergeState | undefined;
  /** Latest record time released by the flow table per direction. */
  private front0 = -1n;
  private front1 = -1n;
  /** Latest record time emitted per direction (to count events emitted against time order). */
  private emitted0 = -1n;
  private emitted1 = -1n;
  private lastTs: bigint;
  private readonly packetsAtStart: number;

  constructor(
    private readonly stitcher: Stitcher,
    open: ConnOpenRecord,
    private readonly tcp: TcpSynth | undefined,
    private readonly udp: UdpSynth | undefined,
    private readonly tls: TlsFlowVariants | undefined,
    private readonly holes: FlowHoles,
  ) {
    // Only what the flow report needs is kept of the conn-open record: an idle flow stays small.
    this.connId = open.connId;
    this.client = open.client;
    this.server = open.server;
    this.attributes = open.attributes;
    this.lastTs = open.timestampNs;
    this.packetsAtStart = stitcher.stats.packets;
  }

  get holding(): boolean {
    const m = this.merge;
    return m !== undefined && (m.held[0].length > 0 || m.held[1].length > 0);
  }

  onData(direction: 0 | 1, _offset: number, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void {
    if (spanNs > this.stitcher.maxSpanNs) this.stitcher.maxSpanNs = spanNs;
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
    if (!this.tcp && !this.tls) return;
    if (dir === 0) {
      if (ts > this.front0) this.front0 = ts;
    } else if (ts > this.front1) this.front1 = ts;
    // Fast path: nothing held, and the other direction is already past this time, or (without the general
    // merge) this is no later than the record being read and the other direction waits for no hole: what
    // a tapper wrote before it has been read.
    if (!this.holding && (ts <= (dir === 0 ? this.front1 : this.front0) || this.inReading(dir, ts))) {
      this.emit(dir, ts, bytes, length, spanNs);
      return;
    }
    this.merge ??= new MergeState();
    const m = this.merge;
    const copy = this.stitcher.options.stableInput ? bytes : bytes?.slice();
    m.held[dir].push({ dir, ts, bytes: copy, length, spanNs });
    m.heldBytes += copy?.length ?? 0;
    this.stitcher.stats.heldEvents++;
    this.stitcher.stats.heldBytes += copy?.length ?? 0;
    this.stitcher.holding.add(this);
    this.release(undefined);
  }

  /**
   * Whether an event at `ts` is within what has been read (no merge of every event): no later than the
   * record being read, and the other direction has no bytes waiting behind a hole (the bytes missing there
   * were written by the tapper before those, may be older than `ts`, and come later in the input).
   */
  private inReading(dir: 0 | 1, ts: bigint): boolean {
    const s = this.stitcher;
    return !s.merging && ts <= s.readingNs && !this.holes.waiting(dir === 0 ? 1 : 0);
  }

  /** Emits held events in time order while the merge rule allows; `upTo` releases those at or before it. */
  release(upTo: bigint | undefined, all = false): void {
    const m = this.merge;
    if (!m) return;
    const s = this.stitcher;
    for (;;) {
      const a = m.held[0][0];
      const b = m.held[1][0];
      if (!a && !b) break;
      const next = !b || (a && a.ts <= b.ts) ? a! : b;
      const otherFront = next.dir === 0 ? this.front1 : this.front0;
      const ok =
        all ||
        next.ts <= otherFront ||
        this.inReading(next.dir, next.ts) ||
        (upTo !== undefined && next.ts <= upTo) ||
        m.heldBytes > s.maxHeldBytesPerFlow;
      if (!ok) break;
      m.held[next.dir].shift();
      m.heldBytes -= next.bytes?.length ?? 0;
      this.emit(next.dir, next.ts, next.bytes, next.length, next.spanNs);
    }
    if (!this.holding) this.stitcher.holding.delete(this);
  }

  private emit(dir: 0 | 1, ts: bigint, bytes: Uint8Array | undefined, length: number, spanNs: number): void {
    const tcp = this.tcp ?? this.tls!;
    if (ts < (dir === 0 ? this.emitted1 : this.emitted0)) this.stitcher.stats.outOfOrderEvents++;
    if (dir === 0) {
      if (ts > this.emitted0) this.emitted0 = ts;
    } else if (ts > this.emitted1) this.emitted1 = ts;
    const end = spanNs ? ts + BigInt(spanNs) : ts;
    if (end > this.lastTs) this.lastTs = end;
    if (bytes) tcp.data(dir, bytes, ts, spanNs);
    else tcp.gap(dir, length);
  }

  onComplete(completion: FlowCompletion): void {
    this.release(undefined, true);
    if (this.tls?.waitingForKeys) {
      // The connection is over but its keys have not landed yet: wait for them, within the stitcher's bound.
      this.stitcher.awaitKeys(this, completion);
      return;
    }
    this.finish(completion);
  }

  /** Called by the stitcher when keys may have arrived; true once the flow no longer waits. */
  retryKeys(): boolean {
    // Decrypted late: stamped no earlier than what the time order already released.
    const floor = this.stitcher.releasedUpToNs;
    this.tls?.keysAvailable(floor > this.lastTs ? floor : this.lastTs);
    return !this.tls?.waitingForKeys;
  }

  giveUpKeys(): void {
    this.tls?.giveUpKeys();
  }

  finish(completion: FlowCompletion): void {
    let tls: TlsFlowReport | undefined;
    if (this.tcp || this.tls) {
      const c = completion.close;
      let timestampNs = c && c.timestampNs > this.lastTs ? c.timestampNs : this.lastTs;
      // A teardown no record holds (timeout, end of input) is made up: stamped at the flow's last activity.
      // Any teardown, made up or recorded, that the time order has passed already (a connection that waited
      // for its keys finishes when they come, or when it gives up on them) is stamped where the order
      // stands, so that it never lands out of order.
      if (this.stitcher.releasedUpToNs > timestampNs) timestampNs = this.stitcher.releasedUpToNs;
      const initiator = c?.initiator === CloseInitiator.Server ? 1 : 0;
      const how =
        c?.reason === CloseReason.Fin
          ? "fin"
          : c?.reason === CloseReason.Rst
            ? "rst"
            : c?.reason !== CloseReason.TapperStop && this.stitcher.finOnTimeout
              ? "fin"
              : "none";
      this.tcp?.end(how, initiator, timestampNs);
      tls = this.tls?.end({ how, initiator, timestampNs });
    }
    (this.tcp ?? this.tls ?? this.udp)?.release();
    this.stitcher.options.onFlowComplete?.({
      flow: {
        connId: this.connId,
        transport: this.udp ? Transport.Udp : Transport.Tcp,
        client: this.client,
        server: this.server,
        attributes: this.attributes,
      },
      completion,
      packets: this.stitcher.stats.packets - this.packetsAtStart,
      ...(tls ? { tls } : {}),
    });
  }
}

export class Stitcher {
  readonly stats = new StitcherStats();
  readonly table: FlowTable;
  /** Flows with events held for the direction merge. */
  readonly holding = new Set<FlowOutput>();
  /** TLS flows holding their first chunks until classified or until their keys' verdict. */
  private readonly tlsHolding = new Set<TlsFlowVariants>();
  /** Completed connections whose TLS keys have not landed yet, with the record time they give up at. */
  private readonly awaiting = new Map<FlowOutput, { completion: FlowCompletion; deadlineNs: bigint }>();
  private readonly keyWaitNs: bigint;
  readonly maxHeldBytesPerFlow: number;
  readonly finOnTimeout: boolean;
  /** Whether every event is merged by timestamp (reorderWindowNs > 0), not only those ahead of the reading. */
  readonly merging: boolean;
  /**
   * Record time of the record being read (`accept`): bytes the flow table releases with a later time (after
   * a hole fill) are ahead of the reading. Not the newest record seen: a record far ahead of its blob (moved
   * into an earlier blob) must not pull the reading forward.
   */
  readingNs = -1n;
  private readonly filter: FlowFilter;
  private readonly arena = new TemplateArena();
  private readonly reorderWindowNs: bigint;
  private readonly ipMtu: number;
  private readonly cleartextPort: (serverPort: number) => number;
  private readonly order: TimeOrder | undefined;
  private readonly orderWindowNs: bigint;
  private readonly widenBySpan: boolean;
  private readonly waitForHoles: boolean;
  /** The caller's promise that no record before this time will come (`noRecordsBefore`). */
  private inputLowNs: bigint | undefined;
  /** Record time up to which the time order has released frames (-1: none yet). */
  releasedUpToNs = -1n;
  /** The longest chunk span seen (it widens the time-order window). */
  maxSpanNs = 0;

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
    this.merging = this.reorderWindowNs > 0n;
    this.ipMtu = (options.mtu ?? DEFAULT_MTU) - (options.encapsulationBytes ?? 0);
    if (this.ipMtu < 68)
      throw new StitchSettingsError(
        `MTU ${options.mtu} minus encapsulation leaves ${this.ipMtu} bytes for IP`,
      );
    this.keyWaitNs = options.tls?.keyWaitNs ?? DEFAULT_KEY_WAIT_NS;
    this.cleartextPort = createCleartextPortMap(
      options.tls?.cleartextPorts,
      options.tls?.defaultCleartextPort,
    );
    this.table = new FlowTable({ create: (flow) => this.create(flow) }, options.flowTable ?? {});
    const order = options.timeOrder;
    this.orderWindowNs = (order === false ? undefined : order?.windowNs) ?? DEFAULT_TIME_ORDER_WINDOW_NS;
    this.widenBySpan = order === false || order?.widenBySpan !== false;
    this.waitForHoles = order === false || order?.waitForHoles !== false;
    if (order !== false) {
      const orderOptions = order?.maxBytes === undefined ? {} : { maxBytes: order.maxBytes };
      this.order = new TimeOrder(orderOptions, this.stats.timeOrder);
    }
  }

  /**
   * A watermark from the caller: no record stamped before `ns` will come (blobs read in start-time order:
   * the start of the blob about to be read). The time order then releases up to it (less the window)
   * instead of up to the newest record seen; `undefined` withdraws it.
   */
  noRecordsBefore(ns: bigint | undefined): void {
    if (ns === undefined) this.inputLowNs = undefined;
    else if (this.inputLowNs === undefined || ns > this.inputLowNs) {
      this.inputLowNs = ns;
      // Merging both directions by time: an event held for the other direction to reach its time can go
      // once no record before it can come from either direction.
      if (this.merging && this.holding.size > 0) this.releaseHeld(ns - 1n);
      // What the last blobs made is released as soon as the next one is known to start later.
      this.releaseOrdered(this.table.now);
    }
  }

  /**
   * Events held because they were ahead of the reading are released once no record of the other direction
   * before them can come: the caller's watermark (or `now`) less the longest chunk span seen.
   */
  private releaseAhead(now: bigint): void {
    if (this.merging || this.holding.size === 0) return;
    this.releaseHeld((this.inputLowNs ?? now) - BigInt(this.maxSpanNs));
  }

  private releaseHeld(upTo: bigint): void {
    for (const f of [...this.holding]) f.release(upTo);
  }

  private releaseOrdered(now: bigint): void {
    this.releaseAhead(now);
    const order = this.order;
    if (!order) return;
    // The caller's watermark, when it gives one, decides alone: it is the same for every stitcher that
    // reads the same blobs (worker threads), so their outputs merge into one time order.
    const span = this.widenBySpan ? BigInt(this.maxSpanNs) : 0n;
    let upTo = (this.inputLowNs ?? now) - this.orderWindowNs - span;
    // Bytes buffered behind a hole (or before their conn-open) come out stamped at their record time or
    // later, whenever the hole fills or is given up: the order waits for the oldest of them only, not for
    // every hole to close (which held everything while any one connection anywhere had a hole).
    if (this.waitForHoles && this.table.stats.bufferedBytes > 0) {
      const oldest = this.table.oldestBufferedNs();
      if (oldest !== undefined && oldest < upTo) upTo = oldest;
    }
    // So do a TLS flow's first chunks, held until it is classified or its keys' verdict is in (short holds:
    // at most 64 KiB, or from a TLS 1.3 ServerHello to the first encrypted record).
    for (const t of this.tlsHolding) {
      const oldest = t.oldestHeldNs;
      if (oldest !== undefined && oldest < upTo) upTo = oldest;
    }
    if (upTo <= this.releasedUpToNs) return;
    // Held events the time order is about to pass go first (their frames would be late otherwise), merged
    // or not: nothing older can come from the other direction once the order stands past them.
    if (this.holding.size > 0) this.releaseHeld(upTo);
    this.releasedUpToNs = upTo;
    order.release(upTo);
  }

  accept(record: TapRecord): void {
    this.readingNs = record.timestampNs;
    this.table.accept(record);
  }

  /** Timeouts, gap waits and the direction merge at record time `now` (default: the newest record seen). */
  flushOlderThan(now: bigint = this.table.now): void {
    this.table.flushOlderThan(now);
    if (this.merging) this.releaseHeld(now - this.reorderWindowNs);
    else this.releaseAhead(now);
    for (const [f, w] of [...this.awaiting]) {
      if (w.deadlineNs <= now) this.stopAwaiting(f, true);
    }
    this.releaseOrdered(now);
  }

  /** The input ended: every flow completes; connections still waiting for keys give up. */
  flushAll(): void {
    this.table.flushAll();
    for (const f of [...this.awaiting.keys()]) this.stopAwaiting(f, true);
    this.order?.releaseAll();
  }

  /** New TLS secrets were added to the key source: connections waiting for them continue. */
  keysAdded(): void {
    for (const f of [...this.awaiting.keys()]) if (f.retryKeys()) this.stopAwaiting(f, false);
  }

  /**
   * Whether the stitcher still holds state of this connection: open in the flow table, ended and waiting
   * for its keys, or ended with frames still in the time-order window. Once it does not, every frame made from the connection's records has been written to the
   * sink (the mesh acks a chunk message only then).
   */
  holdsConnection(connId: string): boolean {
    if (this.table.has(connId)) return true;
    for (const f of this.awaiting.keys()) if (f.connId === connId) return true;
    return this.order?.holds(connId) ?? false;
  }

  /** Connections that ended while waiting for their keys. */
  get awaitingKeys(): number {
    return this.awaiting.size;
  }

  awaitKeys(flow: FlowOutput, completion: FlowCompletion): void {
    this.stats.tls.waitedForKeys++;
    this.awaiting.set(flow, { completion, deadlineNs: this.table.now + this.keyWaitNs });
  }

  private stopAwaiting(flow: FlowOutput, giveUp: boolean): void {
    const w = this.awaiting.get(flow);
    if (!w) return;
    this.awaiting.delete(flow);
    if (giveUp) flow.giveUpKeys();
    flow.finish(w.completion);
  }

  /** The sink for one flow's frames: the shared sink, or its per-flow view when the sink routes flows. */
  private targetFor(
    open: ConnOpenRecord,
    variant: "original" | "cleartext",
    serverPort: number,
    plain = false,
  ): FrameSink & { end?(): void } {
    const sink = this.options.sink;
    if (!isFlowAware(sink)) return sink;
    const context: FrameFlowContext = {
      connId: open.connId,
      variant,
      transport: open.transport === Transport.Udp ? "udp" : "tcp",
      ipVersion: open.ipVersion,
      client: open.client,
      server: { address: open.server.address, port: serverPort },
      attributes: open.attributes,
      ...(plain ? { plain: true } : {}),
    };
    return sink.forFlow(context);
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
      clientAddress: parseIpAddress(open.client.address),
      serverAddress: parseIpAddress(open.server.address),
      clientPort: open.client.port,
      serverPort: open.server.port,
    };
    const tcp = open.transport === Transport.Tcp;
    const link = this.options.link ?? {};
    const label = hash32(open.connId, 7);
    const templates = new FlowTemplates(ep, tcp ? 6 : 17, link, label, this.arena);
    const ipIds = [hash32(open.connId, 1) & 0xffff, hash32(open.connId, 2) & 0xffff] as const;
    const twinIpIds = [hash32(open.connId, 8) & 0xffff, hash32(open.connId, 9) & 0xffff] as const;
    if (tcp) {
      this.stats.flowsTcp++;
      const t = open.tcp;
      // A mid-stream connection gets no handshake, so no analyzer would know a window scale: unscaled.
      const scale = !open.midstream;
      const handshake = {
        ...(t.clientMss === undefined ? {} : { clientMss: saneMss(t.clientMss) }),
        ...(t.serverMss === undefined ? {} : { serverMss: saneMss(t.serverMss) }),
        ...(t.clientWindowScale === undefined || !scale ? {} : { clientWindowScale: t.clientWindowScale }),
        ...(t.serverWindowScale === undefined || !scale ? {} : { serverWindowScale: t.serverWindowScale }),
        ...(t.sackPermitted ? { sackPermitted: true } : {}),
        ...(t.timestamps ? { timestamps: true } : {}),
      };
      const connId = open.connId;
      const openNs = open.timestampNs;
      const midstream = open.midstream;
      const clientIsn = t.clientIsn ?? hash32(connId, 3);
      const serverIsn = t.serverIsn ?? hash32(connId, 4);
      /** A synthesizer for this connection (or its cleartext twin), its handshake sent at the open time. */
      const make = (
        tmpl: FlowTemplates,
        serverPort: number,
        cIsn: number,
        sIsn: number,
        variant: "original" | "cleartext",
        plain = false,
      ): TcpSynth => {
        const target = this.targetFor(open, variant, serverPort, plain);
        const order = this.order;
        const synth = new TcpSynth(
          order ?? target,
          {
            templates: tmpl,
            clientPort: ep.clientPort,
            serverPort,
            clientIsn: cIsn,
            serverIsn: sIsn,
            ipMtu: this.ipMtu,
            // The cleartext twin is a flow of its own: its own IPv4 id sequence.
            ipIds: variant === "cleartext" && !plain ? twinIpIds : ipIds,
            handshake,
            ...(order ? { flow: order.open(connId, target) } : {}),
            // Each flow (the cleartext twin too) its own timestamp clock offset.
            tsOffset: hash32(connId, variant === "cleartext" && !plain ? 11 : 10),
          },
          this.stats.tcp,
        );
        // A cleartext twin starts at its first decrypted bytes: its handshake goes at the open time, or
        // where the time order already stands when that is later.
        if (!midstream)
          synth.handshake(openNs > this.releasedUpToNs ? openNs : this.releasedUpToNs, handshake);
        return synth;
      };
      const tlsOptions = this.options.tls;
      // The original variant needs TLS parsing only to embed keys: without a place for them, none at all.
      const tlsNeeded =
        tlsOptions && ((tlsOptions.variant ?? "original") !== "original" || tlsOptions.embedKeys);
      if (!tlsOptions || !tlsNeeded)
        return new FlowOutput(
          this,
          open,
          make(templates, ep.serverPort, clientIsn, serverIsn, "original"),
          undefined,
          undefined,
          flow.holes,
        );
      const variant = tlsOptions.variant ?? "original";
      const variants = new TlsFlowVariants(
        {
          variant,
          keys: tlsOptions.keys,
          ...(tlsOptions.embedKeys ? { embedKeys: tlsOptions.embedKeys } : {}),
          cleartextPort: this.cleartextPort,
          ...(tlsOptions.maxKeyWaitBytes === undefined
            ? {}
            : { maxKeyWaitBytes: tlsOptions.maxKeyWaitBytes }),
          connection: { connId, client: open.client, server: open.server },
          holders: this.tlsHolding,
        },
        this.stats.tls,
        // A plain (not TLS) flow is its own clear text: labelled cleartext when only that feed is written.
        (plain) =>
          make(
            templates,
            ep.serverPort,
            clientIsn,
            serverIsn,
            plain && variant === "cleartext" ? "cleartext" : "original",
            plain,
          ),
        () =>
          make(
            new FlowTemplates(ep, 6, link, label ^ 0xc1ea, this.arena),
            this.cleartextPort(ep.serverPort),
            hash32(connId, 5),
            hash32(connId, 6),
            "cleartext",
          ),
      );
      return new FlowOutput(this, open, undefined, undefined, variants, flow.holes);
    }
    this.stats.flowsUdp++;
    // UDP is written as tapped (never decrypted): with a cleartext feed, it is plain and goes to it too.
    const udpVariant = this.options.tls?.variant ?? "original";
    const udpTarget = this.targetFor(
      open,
      udpVariant === "cleartext" ? "cleartext" : "original",
      ep.serverPort,
      udpVariant !== "original",
    );
    const synth = new UdpSynth(
      this.order ? this.order.view(open.connId, udpTarget) : udpTarget,
      { templates, clientPort: ep.clientPort, serverPort: ep.serverPort, ipMtu: this.ipMtu, ipIds },
      this.stats.udp,
    );
    return new FlowOutput(this, open, undefined, synth, undefined, flow.holes);
  }
}
