/**
 * VXLAN and GENEVE export under an export policy: the flow-aware frame sink that builds tunnel datagrams.
 *
 * Per flow (`forFlow`), the policy picks the targets and VNIs once; the flow's tunnel headers (GENEVE with
 * its metadata options) and its outer source-port slot (its symmetric 5-tuple hash, so both directions
 * share one outer 5-tuple) are computed once too. A frame is built by the stitcher directly behind the
 * tunnel header in the first target's batch slab: no copy for one target; each further target gets a copy.
 *
 * Per target: an MTU (a frame too large for it is truncated to the snap length or dropped, and counted), a
 * cap on the datagrams waiting to be sent (beyond it, frames are dropped and counted: memory stays bounded
 * whatever the target does), rate limits (packets/s, bits/s: wait or drop) and pacing (as fast as possible,
 * or the packets' own timing scaled). A target that refuses datagrams (port closed, route gone) is counted by
 * the transport and never stops the others.
 *
 * Datagrams leave through a `DatagramTransport` (the node adapter: udp-transport.ts); this module does no I/O.
 */
import type { FrameFlowContext, FrameSink } from "@cloudtap/packet";
import { type AddressMapping, AddressRemapper, type FlowRewrite, rewriteFrame } from "./address-remap.js";
import { type EgressClock, systemClock } from "./clock.js";
import { DatagramBatch, type DatagramTransport } from "./datagram-batch.js";
import type { EgressOutput, OutputReport } from "./egress-output.js";
import { EgressError, EgressErrorCode } from "./errors.js";
import {
  addressFamily,
  type ExportPolicy,
  OverLimitPolicy,
  OversizePolicy,
  TunnelKind,
  type TunnelTarget,
} from "./export-policy.js";
import { flowHash } from "./flow-hash.js";
import { frameFlowContext } from "./frame-flow.js";
import { encodeGeneveOptions, geneveHeader } from "./geneve.js";
import { burstFor, Pacer, TokenBucket } from "./send-schedule.js";
import { vxlanHeader } from "./vxlan.js";

export const DEFAULT_BATCH_BYTES = 256 * 1024;
/** Datagrams per batch at most (small frames): bounds the per-batch index arrays. */
const BATCH_DATAGRAMS = 2048;
const EMPTY = new Uint8Array(0);
/** A packet due within this much is sent now: timers are not finer than about a millisecond. */
const TIMER_SLACK_MS = 1;
/** Frames that come without a flow are routed through a cache of this many flows (then it starts over). */
const FRAME_ROUTE_CACHE = 4096;

export interface TunnelOutputOptions {
  /** The policy, its target addresses resolved (IP literals, see resolveExportPolicy). */
  readonly policy: ExportPolicy;
  readonly transport: DatagramTransport;
  readonly clock?: EgressClock;
  /** Slab size of one batch of datagrams; default 256 KiB (at least 128 KiB). */
  readonly batchBytes?: number;
  /** Receives each new address mapping (the mapping log) when the policy remaps addresses. */
  readonly onMapping?: (mapping: AddressMapping) => void;
}

class TargetCounters {
  flows = 0;
  /** Frames routed to the target (each is sent, refused, or dropped for one of the reasons below). */
  frames = 0;
  datagrams = 0;
  truncated = 0;
  oversizeDropped = 0;
  queueDropped = 0;
  rateLimitDropped = 0;
}

class TargetState {
  readonly counters = new TargetCounters();
  current: DatagramBatch | undefined;
  /** Full batches not yet handed out by drain/flush. */
  readonly sealed: DatagramBatch[] = [];
  readonly free: DatagramBatch[] = [];
  allocated = 0;
  /** Batches written (handed to `write`) and not yet completely passed to the transport. */
  readonly queue: DatagramBatch[] = [];
  /** Batches written and not yet recycled (queued, or sent and still in the transport's hands). */
  pending = 0;
  readonly pps: TokenBucket | undefined;
  readonly bps: TokenBucket | undefined;
  /** Outer IP + UDP header bytes, for the bits/s limit. */
  readonly outerBytes: number;
  cancelTimer: (() => void) | undefined;
  /** `write` calls waiting for the pending batches to go below half the cap (overLimit "wait"). */
  readonly spaceWaiters: (() => void)[] = [];
  readonly idleWaiters: (() => void)[] = [];

  constructor(
    readonly index: number,
    readonly target: TunnelTarget,
    readonly maxBatches: number,
  ) {
    this.outerBytes = (addressFamily(target.address) === 6 ? 40 : 20) + 8;
    this.pps =
      target.maxPacketsPerSecond === undefined
        ? undefined
        : new TokenBucket(target.maxPacketsPerSecond, burstFor(target.maxPacketsPerSecond, 1));
    this.bps =
      target.maxBitsPerSecond === undefined
        ? undefined
        : new TokenBucket(target.maxBitsPerSecond, burstFor(target.maxBitsPerSecond, 9000 * 8));
  }

  get limited(): boolean {
    return this.pps !== undefined || this.bps !== undefined;
  }
}

/** One target of one flow: its tunnel header, the largest inner frame that fits, its source-port slot. */
interface FlowRoute {
  readonly state: TargetState;
  readonly header: Uint8Array;
  readonly maxFrame: number;
  /** Inner frame bytes kept when a frame is truncated. */
  readonly keep: number;
  readonly slot: number;
}

/**
 * The frames of one flow (one variant of one connection), to its routes. The frame is built straight into
 * the first route's batch, behind the room left for its tunnel header (`beginAt` gives the offset in
 * `buffer`, `begin` a view); further routes, and frames too large for the first, are copied at commit.
 */
class TunnelFlowSink implements FrameSink {
  private batch: DatagramBatch | undefined;
  /** The first route's queue was full when the frame began: it is dropped there (and counted once). */
  private firstFull = false;
  /** Where the datagram (tunnel header) starts in the batch. */
  private at = 0;
  private frameBuffer: Uint8Array = EMPTY;
  private frameAt = 0;
  private frameLength = 0;

  constructor(
    private readonly out: TunnelOutput,
    private readonly routes: readonly FlowRoute[],
    private readonly rewrite: FlowRewrite | undefined,
  ) {}

  get buffer(): Uint8Array {
    return this.frameBuffer;
  }

  beginAt(length: number): number {
    this.frameLength = length;
    const r = this.routes[0];
    if (r !== undefined && length <= r.maxFrame) {
      const batch = this.out.reserve(r.state, r.header.length + length);
      this.firstFull = batch === undefined;
      if (batch !== undefined) {
        this.batch = batch;
        this.at = batch.used;
        this.frameBuffer = batch.bytes;
        this.frameAt = this.at + r.header.length;
        return this.frameAt;
      }
    } else this.firstFull = false;
    this.batch = undefined;
    this.frameBuffer = this.out.scratch(length);
    this.frameAt = 0;
    return 0;
  }

  begin(length: number): Uint8Array {
    const at = this.beginAt(length);
    return this.frameBuffer.subarray(at, at + length);
  }

  commit(timestampNs: bigint, offsetNs = 0): void {
    this.place(
      this.frameBuffer,
      this.frameAt,
      this.frameLength,
      this.out.pacing ? this.out.relativeTime(timestampNs, offsetNs) : 0,
    );
  }

  /** Sends the frame at `buffer[at, at + length)` to every route; the first route's datagram may hold it already. */
  place(buffer: Uint8Array, at: number, length: number, time: number): void {
    if (this.rewrite !== undefined && !rewriteFrame(buffer.subarray(at, at + length), this.rewrite)) {
      this.out.remapMismatches++;
    }
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      r.state.counters.frames++;
      const batch = this.batch;
      if (i === 0 && batch !== undefined) {
        batch.bytes.set(r.header, this.at);
        this.out.record(batch, this.at, r.header.length + length, r.slot, time);
        r.state.counters.datagrams++;
        continue;
      }
      if (i === 0 && this.firstFull) {
        r.state.counters.queueDropped++;
        continue;
      }
      this.out.copy(r, buffer, at, length, time);
    }
    this.batch = undefined;
    this.firstFull = false;
  }
}

/** A sink for flows the policy exports nowhere: frames are built in scratch space and counted. */
class DroppedFlowSink implements FrameSink {
  constructor(private readonly out: TunnelOutput) {}
  begin(length: number): Uint8Array {
    return this.out.scratch(length);
  }
  commit(): void {
    this.out.framesDroppedByPolicy++;
  }
}

export class TunnelOutput implements EgressOutput {
  readonly name: string;
  readonly kind = "tunnel";
  readonly pacing: boolean;
  private readonly policy: ExportPolicy;
  private readonly transport: DatagramTransport;
  private readonly clock: EgressClock;
  private readonly batchBytes: number;
  private readonly states: TargetState[];
  private readonly pacer: Pacer | undefined;
  private readonly remapper: AddressRemapper | undefined;
  /** Chunks handed out by drain/flush, until written. */
  private readonly handedOut = new Map<Uint8Array, DatagramBatch>();
  private scratchBuffer = new Uint8Array(2048);
  private timeBase: bigint | undefined;
  private lastTs = -1n;
  private lastRelative = 0;
  private readonly frameRoutes = new Map<string, TunnelFlowSink | DroppedFlowSink>();
  private frameStore = new Uint8Array(2048);
  private frameBuffer: Uint8Array = this.frameStore;
  private closed = false;

  flows = 0;
  flowsDroppedByPolicy = 0;
  /** Flows refused before the rules were read: an attribute value with a control character. */
  flowsRefusedByPolicy = 0;
  framesDroppedByPolicy = 0;
  /** Flows not exported because an address range of the remap was full. */
  flowsRemapExhausted = 0;
  /** Frames whose addresses were not the flow's (left unmapped). */
  remapMismatches = 0;
  /** Frames without a flow context that are not TCP/UDP over IP (not exportable under a policy). */
  framesUnroutable = 0;
  frameRouteCacheResets = 0;
  geneveOptionsTruncated = 0;
  geneveOptionsOmitted = 0;

  constructor(options: TunnelOutputOptions) {
    this.policy = options.policy;
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
    if (!Number.isInteger(this.batchBytes) || this.batchBytes < 128 * 1024) {
      throw new EgressError(EgressErrorCode.BadOption, `batchBytes ${this.batchBytes} is below 128 KiB`);
    }
    for (const t of this.policy.targets) {
      if (addressFamily(t.address) === undefined) {
        throw new EgressError(
          EgressErrorCode.BadTarget,
          `target ${t.name}: "${t.address}" is not resolved to an IP address`,
        );
      }
    }
    this.states = this.policy.targets.map(
      (t, i) => new TargetState(i, t, Math.max(2, Math.floor(t.maxQueueBytes / this.batchBytes))),
    );
    this.pacing = this.policy.pacing.mode === "original";
    this.pacer = this.pacing ? new Pacer(this.policy.pacing.speed) : undefined;
    this.remapper = this.policy.remap ? new AddressRemapper(this.policy.remap, options.onMapping) : undefined;
    this.name = `tunnel:${this.policy.targets.map((t) => t.name).join(",")}`;
  }

  // --- frames in -------------------------------------------------------------------------------------------

  forFlow(flow: FrameFlowContext): FrameSink & { end?(): void } {
    this.flows++;
    const hash = flowHash(flow);
    const decision = this.policy.decide(flow, hash);
    if (decision.routes.length === 0) {
      if (decision.refused) this.flowsRefusedByPolicy++;
      else this.flowsDroppedByPolicy++;
      return new DroppedFlowSink(this);
    }
    let rewrite: FlowRewrite | undefined;
    if (this.remapper) {
      rewrite = this.remapper.forFlow(flow);
      if (rewrite === undefined) {
        this.flowsRemapExhausted++;
        return new DroppedFlowSink(this);
      }
    }
    const slot = hash % this.transport.slots;
    let encoded: ReturnType<typeof encodeGeneveOptions> | undefined;
    const routes: FlowRoute[] = decision.routes.map((route) => {
      const state = this.states[route.target]!;
      const t = state.target;
      state.counters.flows++;
      let header: Uint8Array;
      if (t.kind === TunnelKind.Vxlan) header = vxlanHeader(route.vni);
      else {
        const config = t.geneve!;
        const labelled = route.variant === undefined ? flow : { ...flow, variant: route.variant };
        const options = encodeGeneveOptions(labelled, config);
        // Count once per flow, not per target that carries the same options.
        if (encoded === undefined) {
          encoded = options;
          this.geneveOptionsTruncated += options.truncated;
          this.geneveOptionsOmitted += options.omitted;
        }
        header = geneveHeader(route.vni, options.bytes);
      }
      const maxFrame = t.mtu - state.outerBytes - header.length;
      return { state, header, maxFrame, keep: Math.min(t.snapLength ?? maxFrame, maxFrame), slot };
    });
    return new TunnelFlowSink(this, routes, rewrite);
  }

  /** A frame without a flow context: routed by the flow its headers name (see frame-flow.ts). */
  begin(length: number): Uint8Array {
    if (this.frameStore.length < length) this.frameStore = new Uint8Array(Math.max(length, 2048));
    this.frameBuffer = this.frameStore.subarray(0, length);
    return this.frameBuffer;
  }

  commit(timestampNs: bigint, offsetNs = 0): void {
    const frame = this.frameBuffer;
    const flow = frameFlowContext(frame);
    if (flow === undefined) {
      this.framesUnroutable++;
      return;
    }
    const key = `${flow.transport}|${flow.client.address}|${flow.client.port}|${flow.server.address}|${flow.server.port}`;
    let sink = this.frameRoutes.get(key);
    if (sink === undefined) {
      if (this.frameRoutes.size >= FRAME_ROUTE_CACHE) {
        this.frameRoutes.clear();
        this.frameRouteCacheResets++;
      }
      sink = this.forFlow(flow) as TunnelFlowSink | DroppedFlowSink;
      this.frameRoutes.set(key, sink);
    }
    if (sink instanceof DroppedFlowSink) {
      sink.commit();
      return;
    }
    sink.place(frame, 0, frame.length, this.pacing ? this.relativeTime(timestampNs, offsetNs) : 0);
  }

  scratch(length: number): Uint8Array {
    if (this.scratchBuffer.length < length) this.scratchBuffer = new Uint8Array(length);
    return this.scratchBuffer.subarray(0, length);
  }

  /** Packet time in ns since the first packet, as a number (pacing only). */
  relativeTime(timestampNs: bigint, offsetNs: number): number {
    if (timestampNs !== this.lastTs) {
      if (this.timeBase === undefined) this.timeBase = timestampNs;
      this.lastTs = timestampNs;
      this.lastRelative = Number(timestampNs - this.timeBase);
    }
    return this.lastRelative + offsetNs;
  }

  /** A batch of the target with room for `total` bytes; undefined when the target's queue is full (the caller counts the drop). */
  reserve(state: TargetState, total: number): DatagramBatch | undefined {
    const current = state.current;
    if (current?.fits(total)) return current;
    if (current !== undefined && current.count > 0) state.sealed.push(current);
    let next = state.free.pop();
    if (next === undefined && state.allocated < state.maxBatches) {
      next = new DatagramBatch(state.index, this.batchBytes, BATCH_DATAGRAMS, this.pacing);
      state.allocated++;
    }
    state.current = next;
    next?.reset();
    return next;
  }

  record(batch: DatagramBatch, at: number, length: number, slot: number, time: number): void {
    const i = batch.count;
    batch.offsets[i] = at;
    batch.lengths[i] = length;
    batch.slots[i] = slot;
    if (batch.times !== undefined) batch.times[i] = time;
    batch.used = at + length;
    batch.count = i + 1;
  }

  /** A copy of the frame at `buffer[at, at + frameLength)` for a route whose datagram was not built in place. */
  copy(r: FlowRoute, buffer: Uint8Array, at: number, frameLength: number, time: number): void {
    const c = r.state.counters;
    let length = frameLength;
    if (length > r.maxFrame) {
      if (r.state.target.oversize === OversizePolicy.Drop) {
        c.oversizeDropped++;
        return;
      }
      length = r.keep;
      c.truncated++;
    }
    const total = r.header.length + length;
    const batch = this.reserve(r.state, total);
    if (batch === undefined) {
      c.queueDropped++;
      return;
    }
    const to = batch.used;
    batch.bytes.set(r.header, to);
    batch.bytes.set(buffer.subarray(at, at + length), to + r.header.length);
    this.record(batch, to, total, r.slot, time);
    c.datagrams++;
  }

  // --- chunks out ------------------------------------------------------------------------------------------

  /**
   * Every batch with datagrams, the one being filled included: tunnel datagrams should leave promptly, and
   * the stitch job drains after each slice of input, so batches are still well filled.
   */
  drain(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const s of this.states) {
      if (s.current !== undefined && s.current.count > 0) {
        s.sealed.push(s.current);
        s.current = undefined;
      }
      for (const b of s.sealed) {
        const view = b.bytes.subarray(0, b.used);
        this.handedOut.set(view, b);
        out.push(view);
      }
      s.sealed.length = 0;
    }
    return out;
  }

  flush(): Uint8Array[] {
    return this.drain();
  }

  write(chunk: Uint8Array): void | Promise<void> {
    const batch = this.handedOut.get(chunk);
    if (batch === undefined) {
      throw new EgressError(EgressErrorCode.Misuse, "write of a chunk this tunnel output did not hand out");
    }
    this.handedOut.delete(chunk);
    const state = this.states[batch.target]!;
    if (this.closed) {
      batch.reset();
      state.free.push(batch);
      return;
    }
    state.queue.push(batch);
    state.pending++;
    this.pump(state);
    if (state.target.overLimit === OverLimitPolicy.Wait && state.pending > state.maxBatches / 2) {
      return new Promise((resolve) => state.spaceWaiters.push(resolve));
    }
  }

  private sendRange(state: TargetState, batch: DatagramBatch, from: number, to: number): void {
    if (to <= from) return;
    const done = this.transport.send(batch, from, to);
    if (done !== undefined) {
      batch.inFlight++;
      done.then(
        () => this.settled(state, batch),
        () => this.settled(state, batch),
      );
    }
  }

  private settled(state: TargetState, batch: DatagramBatch): void {
    batch.inFlight--;
    if (batch.inFlight === 0 && batch.sent === batch.count && !state.queue.includes(batch)) {
      this.recycle(state, batch);
    }
  }

  private recycle(state: TargetState, batch: DatagramBatch): void {
    state.pending--;
    batch.reset();
    state.free.push(batch);
    this.wake(state);
  }

  /** Resolves writers waiting for room, and close() waiting for the target to go idle. */
  private wake(state: TargetState): void {
    if (state.pending <= state.maxBatches / 2 || this.closed) {
      for (const w of state.spaceWaiters.splice(0)) w();
    }
    if (state.pending === 0 && state.cancelTimer === undefined) {
      for (const w of state.idleWaiters.splice(0)) w();
    }
  }

  /** Passes queued datagrams to the transport as far as pacing and rate limits allow, then sets a timer. */
  private pump(state: TargetState): void {
    if (state.cancelTimer !== undefined) return;
    const paced = this.pacer !== undefined || state.limited;
    let now = paced ? this.clock.now() : 0;
    while (state.queue.length > 0) {
      const batch = state.queue[0]!;
      if (!paced) {
        this.sendRange(state, batch, batch.sent, batch.count);
        batch.sent = batch.count;
      } else {
        let from = batch.sent;
        for (let i = batch.sent; i < batch.count; i++) {
          if ((i & 63) === 0) now = this.clock.now();
          const bits = (batch.lengths[i]! + state.outerBytes) * 8;
          let limitDue = now;
          if (state.pps !== undefined) limitDue = Math.max(limitDue, state.pps.dueAt(1, now));
          if (state.bps !== undefined) limitDue = Math.max(limitDue, state.bps.dueAt(bits, now));
          if (limitDue > now + TIMER_SLACK_MS && state.target.overLimit === OverLimitPolicy.Drop) {
            this.sendRange(state, batch, from, i);
            from = i + 1;
            state.counters.rateLimitDropped++;
            continue;
          }
          const due =
            this.pacer !== undefined ? Math.max(limitDue, this.pacer.dueAt(batch.times![i]!, now)) : limitDue;
          if (due > now + TIMER_SLACK_MS) {
            this.sendRange(state, batch, from, i);
            batch.sent = i;
            state.cancelTimer = this.clock.setTimer(due - now, () => {
              state.cancelTimer = undefined;
              this.pump(state);
            });
            return;
          }
          state.pps?.take(1, now);
          state.bps?.take(bits, now);
        }
        this.sendRange(state, batch, from, batch.count);
        batch.sent = batch.count;
      }
      state.queue.shift();
      if (batch.inFlight === 0) this.recycle(state, batch);
    }
    this.wake(state);
  }

  /** Resolves when every written datagram of every target has left (or was refused). */
  private async idle(): Promise<void> {
    await Promise.all(
      this.states.map((s) =>
        s.pending === 0 && s.cancelTimer === undefined
          ? undefined
          : new Promise<void>((resolve) => s.idleWaiters.push(resolve)),
      ),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Batches built but never handed out (the caller skipped the final flush) are not sent.
    for (const s of this.states) {
      if (s.current !== undefined) {
        s.free.push(s.current);
        s.current = undefined;
      }
      for (const b of s.sealed) s.free.push(b);
      s.sealed.length = 0;
    }
    for (const [, b] of this.handedOut) this.states[b.target]!.free.push(b);
    this.handedOut.clear();
    await this.idle();
    this.closed = true;
    await this.transport.close();
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.states) {
      s.cancelTimer?.();
      s.cancelTimer = undefined;
      s.queue.length = 0;
      this.wake(s);
      for (const w of s.idleWaiters.splice(0)) w();
    }
    await this.transport.close();
  }

  report(): OutputReport {
    return {
      name: this.name,
      kind: this.kind,
      mechanism: this.transport.mechanism,
      flows: this.flows,
      flowsDroppedByPolicy: this.flowsDroppedByPolicy,
      flowsRefusedByPolicy: this.flowsRefusedByPolicy,
      framesDroppedByPolicy: this.framesDroppedByPolicy,
      framesUnroutable: this.framesUnroutable,
      frameRouteCacheResets: this.frameRouteCacheResets,
      geneveOptionsTruncated: this.geneveOptionsTruncated,
      geneveOptionsOmitted: this.geneveOptionsOmitted,
      pacing: this.policy.pacing,
      ...(this.remapper
        ? {
            remap: {
              clientMappings: this.remapper.stats.clientMappings,
              serverMappings: this.remapper.stats.serverMappings,
              flowsUnmappedFamily: this.remapper.stats.flowsUnmappedFamily,
              flowsExhausted: this.flowsRemapExhausted,
              frameMismatches: this.remapMismatches,
            },
          }
        : {}),
      targets: this.states.map((s) => {
        const t = s.target;
        const sent = this.transport.stats(s.index);
        return {
          name: t.name,
          kind: t.kind,
          address: t.address,
          port: t.port,
          mtu: t.mtu,
          vni: { original: t.vni, cleartext: t.cleartextVni },
          sourcePorts: this.transport.sourcePorts(s.index),
          flows: s.counters.flows,
          frames: s.counters.frames,
          datagramsBuilt: s.counters.datagrams,
          datagramsSent: sent.datagrams,
          bytesSent: sent.bytes,
          sendErrors: { ...sent.errors },
          lastError: sent.lastError ?? null,
          unreachable: { ...sent.unreachable },
          truncated: s.counters.truncated,
          oversizeDropped: s.counters.oversizeDropped,
          queueDropped: s.counters.queueDropped,
          rateLimitDropped: s.counters.rateLimitDropped,
          /** Batches written and not yet sent (or still with the transport); bounded by maxBatches. */
          pendingBatches: s.pending,
          maxBatches: s.maxBatches,
        };
      }),
    };
  }
}

export function createTunnelOutput(options: TunnelOutputOptions): TunnelOutput {
  return new TunnelOutput(options);
}
