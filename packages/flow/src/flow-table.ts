/**
 * The flow table: tapped records in, connections out, each as a stream of in-order bytes per direction with
 * explicit gaps.
 *
 * Lifecycle contract (per connection id):
 *   1. `FlowHandler.create(flow)` is called once, when the flow's conn-open record has been seen, or when
 *      the flow times out in state `new` without one (then `flow.open` is undefined). It returns a
 *      `FlowStream`, or undefined to ignore the flow (its records are then dropped and counted).
 *   2. `onData` / `onDatagram` / `onGap` are called 0..n times, in byte order per direction. Directions are
 *      interleaved in the order their bytes became releasable. `bytes` is only valid during the call:
 *      copy what you keep.
 *   3. `onComplete` is called exactly once, after which nothing else is called for that flow. Records of a
 *      completed flow that arrive later (duplicates from another blob) are recognised for a while (a bounded
 *      memory of completed ids) and counted as late, not made into a new flow.
 *
 * Time is the record timestamps; the table never reads a clock. `now` is the highest timestamp seen. Timeouts
 * and gap waits act only when the caller calls `flushOlderThan(now)` (e.g. after each blob) or `flushAll()`
 * (at the end of input, or at shutdown).
 *
 * Every buffer has a cap, a named overflow policy and a counter in `stats`.
 */
import {
  type ConnCloseRecord,
  type ConnOpenRecord,
  type DatagramRecord,
  type DataRecord,
  type Direction,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { OrderedStream, type StreamOutput } from "./ordered-stream.js";

export const FlowState = { New: "new", Established: "established", Closing: "closing" } as const;
export type FlowState = (typeof FlowState)[keyof typeof FlowState];

export const CompletionReason = {
  /** The close record was seen and both directions are complete up to its byte totals. */
  Closed: "closed",
  /** The close record was seen but bytes were still missing when the closing timeout expired. */
  ClosedIncomplete: "closed-incomplete",
  /** No record for longer than the established timeout (no close record). */
  IdleTimeout: "idle-timeout",
  /** No conn-open record arrived within the new-flow timeout. */
  NeverOpened: "never-opened",
  /** Evicted to make room (max flows or total buffered bytes). */
  Evicted: "evicted",
  /** `flushAll()`: the input ended. */
  Flushed: "flushed",
} as const;
export type CompletionReason = (typeof CompletionReason)[keyof typeof CompletionReason];

/** What the table does when it holds `maxFlows` flows and a record of a new one arrives. */
export const FlowOverflowPolicy = {
  /** Complete the least recently active flow (reason `evicted`) and admit the new one. */
  EvictOldest: "evict-oldest",
  /** Drop the new flow's records (counted). */
  DropNew: "drop-new",
} as const;
export type FlowOverflowPolicy = (typeof FlowOverflowPolicy)[keyof typeof FlowOverflowPolicy];

/** What a flow does when its buffered (out-of-order) bytes exceed `maxBufferedBytesPerFlow`. */
export const BufferOverflowPolicy = {
  /** Give up on the oldest hole: report it as a gap and release what waited behind it. */
  ReleaseGap: "release-gap",
  /** Drop the chunk that does not fit (counted); it becomes a gap later if it never comes again. */
  DropData: "drop-data",
} as const;
export type BufferOverflowPolicy = (typeof BufferOverflowPolicy)[keyof typeof BufferOverflowPolicy];

export interface FlowTableOptions {
  readonly maxFlows?: number;
  readonly flowOverflow?: FlowOverflowPolicy;
  readonly maxBufferedBytesPerFlow?: number;
  readonly bufferOverflow?: BufferOverflowPolicy;
  /** Across all flows; above it, holes of the least recently active flows are released as gaps. */
  readonly maxBufferedBytesTotal?: number;
  /** How long (record time) bytes wait behind a hole before the hole is released as a gap. */
  readonly gapWaitNs?: bigint;
  /** Idle timeouts per state, in record time. */
  readonly newTimeoutNs?: bigint;
  readonly establishedTimeoutNs?: bigint;
  readonly closingTimeoutNs?: bigint;
  /** How many completed connection ids are remembered to recognise late duplicates. */
  readonly completedMemory?: number;
}

export const DEFAULT_FLOW_TABLE_OPTIONS = {
  maxFlows: 1_000_000,
  flowOverflow: FlowOverflowPolicy.EvictOldest,
  maxBufferedBytesPerFlow: 16 * 1024 * 1024,
  bufferOverflow: BufferOverflowPolicy.ReleaseGap,
  maxBufferedBytesTotal: 1024 * 1024 * 1024,
  gapWaitNs: 30_000_000_000n,
  newTimeoutNs: 60_000_000_000n,
  establishedTimeoutNs: 600_000_000_000n,
  closingTimeoutNs: 30_000_000_000n,
  completedMemory: 65_536,
} as const satisfies Required<FlowTableOptions>;

export interface FlowInfo {
  readonly connId: string;
  /** Undefined when the flow timed out in state `new` without its conn-open record. */
  readonly open: ConnOpenRecord | undefined;
  /** The flow's holes, for as long as the flow is in the table (a consumer may keep this). */
  readonly holes: FlowHoles;
}

/** Where a flow's streams stand in the table. */
export interface FlowHoles {
  /**
   * Whether `direction` has bytes held behind a hole: records of it that were read out of order, waiting
   * for bytes before them (which may be older than anything released of either direction since).
   */
  waiting(direction: Direction): boolean;
}

export interface FlowCompletion {
  readonly reason: CompletionReason;
  readonly close: ConnCloseRecord | undefined;
  /** Per direction [c2s, s2c]: bytes released, gaps and gap bytes, duplicates, differing overlaps. */
  readonly directions: readonly [DirectionSummary, DirectionSummary];
}

export interface DirectionSummary {
  readonly bytes: number;
  readonly gaps: number;
  readonly gapBytes: number;
  readonly duplicateBytes: number;
  readonly overlapMismatchBytes: number;
}

export interface FlowStream {
  onData(direction: Direction, offset: number, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void;
  onDatagram(direction: Direction, index: number, bytes: Uint8Array, timestampNs: bigint): void;
  onGap(direction: Direction, offset: number, length: number, timestampNs: bigint): void;
  onComplete(completion: FlowCompletion): void;
}

export interface FlowHandler {
  create(flow: FlowInfo): FlowStream | undefined;
}

export class FlowTableStats {
  flowsCreated = 0;
  flowsIgnored = 0;
  readonly completed: Record<CompletionReason, number> = {
    closed: 0,
    "closed-incomplete": 0,
    "idle-timeout": 0,
    "never-opened": 0,
    evicted: 0,
    flushed: 0,
  };
  /** Records of flows the handler ignored, or that arrived after their flow completed. */
  recordsIgnored = 0;
  lateRecords = 0;
  droppedNewFlows = 0;
  /** Times a flow hit its buffer cap, and bytes dropped under the drop-data policy. */
  perFlowCapHits = 0;
  droppedBytes = 0;
  totalCapHits = 0;
  gaps = 0;
  gapBytes = 0;
  duplicateBytes = 0;
  overlapMismatchBytes = 0;
  duplicateDatagrams = 0;
  bufferedBytes = 0;
  peakBufferedBytes = 0;
  flows = 0;
  peakFlows = 0;
  /**
   * Second conn-open records of a connection id naming another transport or 5-tuple (an id reused, e.g. by
   * a second tapper): the first open stands, the second is ignored, and its bytes land in the first flow.
   */
  conflictingOpens = 0;
}

const MAX_DATAGRAM_INDEXES = 4096;

const Flag = { Opened: 1, Udp: 2, Ignored: 4 } as const;

/**
 * One connection in the table. It is also the output of its two ordered streams (one object, no closures,
 * so an idle flow costs a few hundred bytes).
 */
class Flow implements StreamOutput, FlowHoles {
  /** The conn-open record until the consumer is created (it gets the record; the table keeps no copy). */
  open: ConnOpenRecord | undefined = undefined;
  close: ConnCloseRecord | undefined = undefined;
  state: FlowState = FlowState.New;
  stream: FlowStream | undefined = undefined;
  /** `Flag` bits: a few booleans in one field (an idle flow's size matters at 100,000 flows). */
  private bits = 0;

  get opened(): boolean {
    return (this.bits & Flag.Opened) !== 0;
  }
  set opened(v: boolean) {
    this.bits = v ? this.bits | Flag.Opened : this.bits & ~Flag.Opened;
  }
  get udp(): boolean {
    return (this.bits & Flag.Udp) !== 0;
  }
  set udp(v: boolean) {
    this.bits = v ? this.bits | Flag.Udp : this.bits & ~Flag.Udp;
  }
  get ignored(): boolean {
    return (this.bits & Flag.Ignored) !== 0;
  }
  set ignored(v: boolean) {
    this.bits = v ? this.bits | Flag.Ignored : this.bits & ~Flag.Ignored;
  }
  c2s = new OrderedStream(0);
  s2c = new OrderedStream(1);
  /** Datagram indexes seen per direction (bounded), and datagrams held until the stream exists. */
  datagrams:
    | { seen: [Set<number>, Set<number>]; held: DatagramRecord[]; bytes: [number, number] }
    | undefined = undefined;
  bufferedBytes = 0;
  /** A hash of the transport and 5-tuple of the conn-open that opened the flow (to tell a reused id). */
  tupleHash = 0;
  /** Record time when the flow last moved to the back of the table's activity order. */
  reorderedNs: bigint;

  constructor(
    readonly connId: string,
    public lastSeenNs: bigint,
  ) {
    this.reorderedNs = lastSeenNs;
  }

  dir(d: Direction): OrderedStream {
    return d === 0 ? this.c2s : this.s2c;
  }

  waiting(d: Direction): boolean {
    return (d === 0 ? this.c2s : this.s2c).hasPending;
  }

  /** The flow's output once it has a consumer, else undefined (bytes are held). */
  get out(): StreamOutput | undefined {
    return this.stream ? this : undefined;
  }

  data(direction: 0 | 1, offset: number, bytes: Uint8Array, timestampNs: bigint, spanNs: number): void {
    this.stream!.onData(direction, offset, bytes, timestampNs, spanNs);
  }

  /** Gaps are counted in the table's stats by `FlowTable.countGaps`, around the calls that release them. */
  gap(direction: 0 | 1, offset: number, length: number, timestampNs: bigint): void {
    this.stream!.onGap(direction, offset, length, timestampNs);
  }

  get gapCount(): number {
    return this.c2s.gapCount + this.s2c.gapCount;
  }

  get gapBytes(): number {
    return this.c2s.gapBytes + this.s2c.gapBytes;
  }
}

/** FNV-1a over the transport and 5-tuple of a conn-open. */
function tupleHashOf(open: ConnOpenRecord): number {
  const t = `${open.transport} ${open.client.address} ${open.client.port} ${open.server.address} ${open.server.port}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < t.length; i++) h = Math.imul(h ^ t.charCodeAt(i), 0x01000193);
  // Signed: a small integer in V8 (an unsigned value above 2^31 would be a boxed double in every flow).
  return h | 0;
}

/** Re-insert a flow into the activity order at most once per this much record time (Map churn). */
const REORDER_GRANULARITY_NS = 1_000_000_000n;

export class FlowTable {
  readonly stats = new FlowTableStats();
  private readonly o: Required<FlowTableOptions>;
  /** Insertion order = least recently active first (a flow is re-inserted when it sees a record). */
  private readonly flows = new Map<string, Flow>();
  private readonly completedIds = new Set<string>();
  /** The flows holding buffered bytes (behind a hole, or before their consumer exists). */
  private readonly buffering = new Set<Flow>();
  private nowNs = 0n;

  constructor(
    private readonly handler: FlowHandler,
    options: FlowTableOptions = {},
  ) {
    this.o = { ...DEFAULT_FLOW_TABLE_OPTIONS, ...options };
  }

  /** The highest record timestamp seen. */
  get now(): bigint {
    return this.nowNs;
  }

  get size(): number {
    return this.flows.size;
  }

  /**
   * Record time of the oldest byte buffered anywhere in the table (behind a hole, or before its flow's
   * consumer exists); undefined when nothing is. Whatever those bytes become when they are released is
   * stamped no earlier than this, so an ordered output may safely pass everything before it.
   */
  oldestBufferedNs(): bigint | undefined {
    let oldest: bigint | undefined;
    const older = (t: bigint | undefined) => {
      if (t !== undefined && (oldest === undefined || t < oldest)) oldest = t;
    };
    for (const flow of this.buffering) {
      older(flow.c2s.waitingSinceNs);
      older(flow.s2c.waitingSinceNs);
      for (const r of flow.datagrams?.held ?? []) older(r.timestampNs);
    }
    return oldest;
  }

  /** Whether the table holds live state of this connection (it has records and has not completed). */
  has(connId: string): boolean {
    return this.flows.has(connId);
  }

  accept(record: TapRecord): void {
    if (record.timestampNs > this.nowNs) this.nowNs = record.timestampNs;
    const flow = this.lookup(record.connId);
    if (!flow) return;
    if (flow.ignored) {
      this.stats.recordsIgnored++;
      return;
    }
    switch (record.type) {
      case "conn-open":
        if (flow.opened) {
          if (tupleHashOf(record) !== flow.tupleHash) this.stats.conflictingOpens++;
        } else {
          flow.opened = true;
          flow.tupleHash = tupleHashOf(record);
          flow.open = record;
          flow.udp = record.transport === Transport.Udp;
          if (flow.state === FlowState.New) flow.state = FlowState.Established;
          this.start(flow);
        }
        break;
      case "data":
        this.data(flow, record);
        break;
      case "datagram":
        this.datagram(flow, record);
        break;
      case "conn-close":
        if (!flow.close) {
          flow.close = record;
          flow.state = FlowState.Closing;
        }
        break;
    }
    this.touch(flow, record.timestampNs);
    if (flow.close && flow.stream) this.completeIfDone(flow);
    if (this.stats.bufferedBytes > this.o.maxBufferedBytesTotal) this.relieveTotal();
  }

  /**
   * Applies the timeouts and gap waits at time `nowNs` (default: the highest record timestamp seen).
   * Holes that have waited `gapWaitNs` are released as gaps; flows idle past their state's timeout complete.
   */
  flushOlderThan(nowNs: bigint = this.nowNs): void {
    for (const flow of [...this.flows.values()]) {
      if (flow.stream) {
        for (const d of [0, 1] as const) {
          const since = flow.dir(d).waitingSinceNs;
          if (since !== undefined && since + this.o.gapWaitNs <= nowNs) this.releaseHoles(flow, d);
        }
        if (flow.close) this.completeIfDone(flow);
      }
      if (!this.flows.has(flow.connId)) continue;
      const timeout =
        flow.state === FlowState.New
          ? this.o.newTimeoutNs
          : flow.state === FlowState.Closing
            ? this.o.closingTimeoutNs
            : this.o.establishedTimeoutNs;
      if (flow.lastSeenNs + timeout <= nowNs) {
        const reason =
          flow.state === FlowState.New
            ? CompletionReason.NeverOpened
            : flow.state === FlowState.Closing
              ? CompletionReason.ClosedIncomplete
              : CompletionReason.IdleTimeout;
        this.complete(flow, reason);
      }
    }
  }

  /** Completes every flow: the input has ended. Flows without a conn-open are offered to the handler first. */
  flushAll(): void {
    for (const flow of [...this.flows.values()]) {
      if (!this.flows.has(flow.connId)) continue;
      const reason = flow.close
        ? this.missing(flow)
          ? CompletionReason.ClosedIncomplete
          : CompletionReason.Closed
        : CompletionReason.Flushed;
      this.complete(flow, flow.opened ? reason : CompletionReason.NeverOpened);
    }
  }

  // ------------------------------------------------------------------------------------------- internals

  private lookup(connId: string): Flow | undefined {
    const f = this.flows.get(connId);
    if (f) return f;
    if (this.completedIds.has(connId)) {
      this.stats.lateRecords++;
      return undefined;
    }
    if (this.flows.size >= this.o.maxFlows) {
      if (this.o.flowOverflow === FlowOverflowPolicy.DropNew) {
        this.stats.droppedNewFlows++;
        return undefined;
      }
      const oldest = this.flows.values().next().value;
      if (oldest) this.complete(oldest, CompletionReason.Evicted);
    }
    const flow = new Flow(connId, this.nowNs);
    this.flows.set(connId, flow);
    this.stats.flows = this.flows.size;
    if (this.flows.size > this.stats.peakFlows) this.stats.peakFlows = this.flows.size;
    return flow;
  }

  private touch(flow: Flow, ts: bigint): void {
    if (ts > flow.lastSeenNs) flow.lastSeenNs = ts;
    // Move to the back of the activity order, at most once per second of record time per flow.
    if (flow.lastSeenNs - flow.reorderedNs >= REORDER_GRANULARITY_NS) {
      flow.reorderedNs = flow.lastSeenNs;
      this.flows.delete(flow.connId);
      this.flows.set(flow.connId, flow);
    }
  }

  private addBuffered(flow: Flow, delta: number): void {
    if (delta === 0) return;
    flow.bufferedBytes += delta;
    this.stats.bufferedBytes += delta;
    if (flow.bufferedBytes > 0) this.buffering.add(flow);
    else this.buffering.delete(flow);
    if (this.stats.bufferedBytes > this.stats.peakBufferedBytes)
      this.stats.peakBufferedBytes = this.stats.bufferedBytes;
  }

  /** Creates the consumer and releases what was held while the flow had none. */
  private start(flow: Flow): void {
    const stream = this.handler.create({ connId: flow.connId, open: flow.open, holes: flow });
    flow.open = undefined;
    this.stats.flowsCreated++;
    if (!stream) {
      this.stats.flowsIgnored++;
      flow.ignored = true;
      this.addBuffered(flow, -flow.bufferedBytes);
      flow.c2s = new OrderedStream(0);
      flow.s2c = new OrderedStream(1);
      flow.datagrams = undefined;
      return;
    }
    flow.stream = stream;
    this.addBuffered(flow, flow.c2s.drain(flow));
    this.addBuffered(flow, flow.s2c.drain(flow));
    const held = flow.datagrams?.held;
    if (held?.length) {
      flow.datagrams!.held = [];
      for (const r of held) {
        this.addBuffered(flow, -r.payload.length);
        stream.onDatagram(r.direction, r.index, r.payload, r.timestampNs);
      }
    }
  }

  private data(flow: Flow, r: DataRecord): void {
    const dir = flow.dir(r.direction);
    const out = flow.out;
    const inOrder = out && r.offset <= dir.next && !dir.hasPending;
    if (!inOrder && flow.bufferedBytes + r.payload.length > this.o.maxBufferedBytesPerFlow) {
      this.stats.perFlowCapHits++;
      if (this.o.bufferOverflow === BufferOverflowPolicy.DropData || !out) {
        // Without a consumer there is nothing to release into: the chunk is dropped either way.
        this.stats.droppedBytes += r.payload.length;
        return;
      }
      this.releaseHoles(flow, r.direction);
    }
    const dup = dir.duplicateBytes;
    const mis = dir.overlapMismatchBytes;
    this.addBuffered(flow, dir.accept(r.offset, r.payload, r.timestampNs, r.spanNs, out));
    this.stats.duplicateBytes += dir.duplicateBytes - dup;
    this.stats.overlapMismatchBytes += dir.overlapMismatchBytes - mis;
  }

  private datagram(flow: Flow, r: DatagramRecord): void {
    flow.datagrams ??= { seen: [new Set(), new Set()], held: [], bytes: [0, 0] };
    const seen = flow.datagrams.seen[r.direction];
    if (seen.has(r.index)) {
      this.stats.duplicateDatagrams++;
      return;
    }
    if (seen.size >= MAX_DATAGRAM_INDEXES) seen.delete(seen.values().next().value!);
    seen.add(r.index);
    flow.datagrams.bytes[r.direction] += r.payload.length;
    if (flow.stream) {
      flow.stream.onDatagram(r.direction, r.index, r.payload, r.timestampNs);
      return;
    }
    if (flow.bufferedBytes + r.payload.length > this.o.maxBufferedBytesPerFlow) {
      this.stats.perFlowCapHits++;
      this.stats.droppedBytes += r.payload.length;
      return;
    }
    flow.datagrams.held.push({ ...r, payload: r.payload.slice() });
    this.addBuffered(flow, r.payload.length);
  }

  private releaseHoles(flow: Flow, d: Direction): void {
    if (!flow.stream) return;
    const gaps = flow.gapCount;
    const gapBytes = flow.gapBytes;
    this.addBuffered(flow, flow.dir(d).releaseHole(flow));
    this.stats.gaps += flow.gapCount - gaps;
    this.stats.gapBytes += flow.gapBytes - gapBytes;
  }

  private relieveTotal(): void {
    this.stats.totalCapHits++;
    for (const flow of this.flows.values()) {
      if (this.stats.bufferedBytes <= this.o.maxBufferedBytesTotal) return;
      if (flow.bufferedBytes === 0) continue;
      if (flow.stream) {
        for (const d of [0, 1] as const) while (flow.dir(d).hasPending) this.releaseHoles(flow, d);
      } else {
        this.complete(flow, CompletionReason.Evicted);
      }
    }
  }

  private isUdp(flow: Flow): boolean {
    return flow.udp || (!flow.opened && flow.datagrams !== undefined);
  }

  private missing(flow: Flow): boolean {
    const c = flow.close;
    if (!c) return true;
    if (this.isUdp(flow)) {
      // A UDP close counts datagram bytes per direction: complete once they have all been seen.
      const b = flow.datagrams?.bytes ?? [0, 0];
      return b[0] < c.bytesClientToServer || b[1] < c.bytesServerToClient;
    }
    return (
      flow.c2s.hasPending ||
      flow.s2c.hasPending ||
      flow.c2s.next < c.bytesClientToServer ||
      flow.s2c.next < c.bytesServerToClient
    );
  }

  private completeIfDone(flow: Flow): void {
    if (!this.missing(flow)) this.complete(flow, CompletionReason.Closed);
  }

  private complete(flow: Flow, reason: CompletionReason): void {
    if (!flow.stream && !flow.ignored) {
      // Never opened (or evicted before its open arrived): offer what it holds to the handler anyway.
      this.start(flow);
    }
    if (flow.stream) {
      const c = flow.close;
      // Byte totals bound TCP streams only; datagrams have no offsets to leave a gap in.
      const udp = this.isUdp(flow);
      const totals = udp
        ? ([undefined, undefined] as const)
        : ([c?.bytesClientToServer, c?.bytesServerToClient] as const);
      const gaps = flow.gapCount;
      const gapBytes = flow.gapBytes;
      for (const d of [0, 1] as const)
        this.addBuffered(flow, flow.dir(d).finish(flow, totals[d], this.nowNs));
      this.stats.gaps += flow.gapCount - gaps;
      this.stats.gapBytes += flow.gapBytes - gapBytes;
      const summary = (d: 0 | 1): DirectionSummary => {
        const s = flow.dir(d);
        return {
          bytes: s.releasedBytes,
          gaps: s.gapCount,
          gapBytes: s.gapBytes,
          duplicateBytes: s.duplicateBytes,
          overlapMismatchBytes: s.overlapMismatchBytes,
        };
      };
      flow.stream.onComplete({ reason, close: c, directions: [summary(0), summary(1)] });
    }
    this.addBuffered(flow, -flow.bufferedBytes);
    this.buffering.delete(flow);
    this.flows.delete(flow.connId);
    this.stats.flows = this.flows.size;
    this.stats.completed[reason]++;
    this.completedIds.add(flow.connId);
    if (this.completedIds.size > this.o.completedMemory) {
      this.completedIds.delete(this.completedIds.values().next().value!);
    }
  }
}
