/**
 * The stitch stage of the mesh (docs/mesh.md): the shards this instance owns, each consumed from its durable
 * `stitch-<run>-<shard>` consumer, decoded with the CTAP reader and fed to a `Stitcher` built from
 * `StitcherSettings` (the same one `cloudtap stitch` builds). The stitcher writes into a `FrameBatchRecorder`,
 * and each message's frames go to mirror-egress as one batch over the mirror link.
 *
 * Acks (the third link of the ack chain): a chunk message is acked only when every connection that had a
 * record in it is no longer held by the stitcher (completed, timed out, or flushed at the end of a window)
 * and the egress acknowledged the batch that carried its last frames. Until then the message is held (with
 * its body: the stitcher's direction merge keeps views of it) and `working()` is sent every
 * `workingEveryMs`, so JetStream does not redeliver it. A stitcher that dies therefore leaves every message
 * of every open connection unacked, and its replacement rebuilds those connections from their first record:
 * no connection state lives only in a dead process's memory. The price is duplicates, bounded by the
 * connections of the messages held at the kill.
 *
 * Keys: before a message's records are stitched, the client randoms of its ClientHellos (first client bytes
 * of a connection) are looked up in the key broker and waited for, up to `keyWaitMs`; the stitcher's key
 * source is a local store filled by those answers. Keys that land later still reach connections waiting
 * for them (`keysAdded`).
 */
import {
  type Bus,
  type BusMessage,
  chunkSubject,
  consumeMessages,
  consumerPending,
  ensureConsumer,
  getHeader,
  MeshHeader,
  StreamName,
  sleep,
  stitcherConsumer,
} from "@cloudtap/bus";
import { DEFAULT_BATCH_MAX_BYTES } from "@cloudtap/fetch";
import { FrameBatchRecorder } from "@cloudtap/mirror";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";
import {
  createStitcherFromSettings,
  flowTableCountersOf,
  type Stitcher,
  type StitcherCounters,
  type StitcherSettings,
  stitcherCountersOf,
  type Variant,
} from "@cloudtap/stitch";
import { Direction, readCtap } from "@cloudtap/tap-format";
import { Attr, contextOf, recordError, withContext } from "@cloudtap/telemetry";
import { createKeyStore, type KeyStore, peekClientRandom } from "@cloudtap/tls";
import {
  ArrivalClock,
  forEachFrameMs,
  MeshStage,
  PUBLISHED_MS_HEADER,
  StageLatency,
} from "./stage-latency.js";
import { ShardTracer } from "./stitch-tracing.js";

/** The egress end of one mirror stream, as the stitch stage needs it. */
export interface MirrorLink {
  /** Opens the stream; the egress says what its outputs need. */
  open(): Promise<{ readonly encapsulationBytes: number; readonly embedsKeys: boolean }>;
  /**
   * Sends a batch; resolves once the egress acknowledged it (sinks accepted it). `trace` is the batch span's
   * W3C trace context (`traceparent`, `tracestate`), sent with the batch.
   */
  send(
    seq: bigint,
    frames: Uint8Array,
    trace?: Readonly<Record<string, string>>,
    /** Free bytes before `frames` in its buffer the link may write its message header into. */
    headroom?: number,
  ): Promise<void>;
  /**
   * Between batches: the stream's watermark (no frame to come is stamped earlier; undefined: not known)
   * and whether it has nothing pending (the egress then does not wait for it).
   */
  heartbeat?(watermarkNs: bigint | undefined, idle: boolean): void;
  close(): Promise<void>;
}

/** The key broker, as the stitch stage needs it. */
export interface KeyLookup {
  /** Key-log lines for the client randoms, waiting up to `timeoutMs` for those not there yet. */
  waitForKeys(
    clientRandoms: readonly Uint8Array[],
    timeoutMs: number,
  ): Promise<readonly { readonly clientRandom: Uint8Array; readonly keyLogLines: string }[]>;
}

export interface StitchStageOptions {
  readonly bus: Bus;
  readonly run: string;
  /** The shards consumed from the start (fixed ownership); more are started and stopped with `startShard`. */
  readonly shards: readonly number[];
  /**
   * Elastic ownership (shard leases, `shard-leases.ts`): shards come and go while the stage runs, and the
   * stage ends only with the signal, once every shard it runs has drained.
   */
  readonly elastic?: boolean;
  readonly settings: Omit<StitcherSettings, "tls" | "encapsulationBytes">;
  readonly variant: Variant;
  readonly cleartextPorts?: Readonly<Record<number, number>>;
  /** One mirror stream per shard. */
  readonly mirror: (shard: number) => MirrorLink;
  readonly keys?: KeyLookup;
  /** How long a message waits for its connections' keys. Default 5 s. */
  readonly keyWaitMs?: number;
  /** How far out of time order records may arrive (the watermark's distance). Default 2 min. */
  readonly latenessNs?: bigint;
  readonly ackWaitMs?: number;
  readonly maxAckPending?: number;
  /**
   * Bytes of chunk messages this process asks JetStream for ahead of its work, over all its shards (default
   * `DEFAULT_STITCH_PULL_BYTES`): each shard's pull asks for this share of it in messages of the fetchers'
   * largest batch (`DEFAULT_BATCH_MAX_BYTES`), at least 1 and at most 64.
   */
  readonly pullBytes?: number;
  /** Shards the pull bytes are shared by (default: `shards`' count; elastic: pass the shard count). */
  readonly pullShards?: number;
  readonly workingEveryMs?: number;
  /** Share of flows (0..1, chosen by a hash of the connection id) traced with flow and decrypt spans. */
  readonly flowTraceRatio?: number;
  /**
   * A shard that got no message this long, with nothing unacknowledged, tells the egress it is idle, so the
   * egress's time merge does not wait for it (continuous mode). Its frames after that may reach the egress
   * after later frames of other shards (counted there as late). Undefined: never idle (one-shot windows and
   * replays, whose end-of-window marker closes the stream).
   */
  readonly idleAfterMs?: number;
  /**
   * How often each shard heartbeats on its mirror stream. Default 5 s; with `idleAfterMs`, a quarter of it
   * (200 ms to 5 s), so that the egress stops waiting for an idle shard soon after it became idle.
   */
  readonly heartbeatMs?: number;
  /**
   * Continuous mode: while a shard gets no message, its record clock runs on with the wall clock, up to the
   * lateness: after a silence of `s`, timeouts and the time order act at the newest record time less
   * (lateness - s), so the frames of the last records leave once the lateness has passed in wall time
   * instead of waiting for the next message (at most up to the newest record: never ahead of the input).
   * The price: a record that reaches the shard `s` after the newest one must be at most (lateness - s)
   * behind it, or its frames are late (counted, written all the same). Default false.
   */
  readonly advanceWhenIdle?: boolean;
  /** A shard met its end-of-window marker and everything before it is acked (one-shot runs, replays). */
  readonly onShardDone?: (shard: number) => Promise<void> | void;
  readonly counters: CounterRegistry;
  readonly log: Logger;
  readonly signal: AbortSignal;
}

export interface ShardStatus {
  readonly shard: number;
  /** The end-of-window marker was met and everything before it is acked. */
  readonly done: boolean;
  readonly heldMessages: number;
  readonly stitcher: StitcherCounters;
  readonly gaps: number;
}

export interface StitchStage {
  /** Resolves when every shard's loop ended (end of window in one-shot runs, or the signal). */
  readonly finished: Promise<void>;
  status(): readonly ShardStatus[];
  /** Elastic: begins consuming a shard (its lease is held). */
  startShard(shard: number): void;
  /**
   * Elastic: stops consuming a shard and drains it as on shutdown (what it holds goes out; messages of
   * connections still open stay unacked, for the next owner to rebuild); resolves once it no longer runs.
   */
  stopShard(shard: number): Promise<void>;
  /** The shards running here. */
  running(): readonly number[];
}

interface HeldMessage {
  msg: BusMessage;
  readonly conns: Set<string>;
  /** The batch after which none of its connections was held any more (undefined: some still are). */
  readySeq: bigint | undefined;
}

/** A mirror batch's cap (gRPC's default message limit is 4 MiB). */
export const MAX_MIRROR_BATCH_BYTES = 1024 * 1024;

export const DEFAULT_STITCH_LATENESS_NS = 120_000_000_000n;

/**
 * What a stitcher process pulls ahead, over all its shards' pulls: 32 MiB. They share one NATS connection,
 * and nats-server disconnects a client with more than its `max_pending` (64 MiB by default) waiting to be
 * written to it ("slow consumer"); the messages it had sent come back only after the ack wait. With 64
 * messages per shard (up to 64 MiB each of 8 shards) that happened in three of six mesh runs at full speed,
 * and each of them stalled for the 30 s ack wait. It also bounds the memory the pulls hold. (A record larger
 * than a batch travels in a message of its own, up to the stream's 8 MiB: rare, and not counted here.)
 */
export const DEFAULT_STITCH_PULL_BYTES = 32 * 1024 * 1024;

/** Messages each shard's pull asks for: its share of the pull bytes in the fetchers' largest batches. */
export function pullMessagesPerShard(pullBytes: number, shards: number): number {
  const n = Math.floor(pullBytes / (Math.max(1, shards) * DEFAULT_BATCH_MAX_BYTES));
  return Math.min(64, Math.max(1, n));
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** The key broker's answers, as the stitchers' key source (one per process, shared by its shards). */
class BrokeredKeys {
  readonly store: KeyStore = createKeyStore({ ttlMs: 24 * 3600 * 1000, maxBytes: 256 * 1024 * 1024 });
  private readonly known = new Set<string>();
  private readonly stitchers = new Set<Stitcher>();

  constructor(
    private readonly lookup: KeyLookup | undefined,
    private readonly waitMs: number,
    private readonly counters: CounterRegistry,
    private readonly lateKeysMs = 5 * 60_000,
  ) {}

  register(stitcher: Stitcher): void {
    this.stitchers.add(stitcher);
  }

  /**
   * Fetches what the broker has for these client randoms (waiting up to the bound for missing ones). Keys
   * still missing, or a broker that does not answer (restarting), are looked for again in the background,
   * for up to `lateKeysMs`; the waiting flows continue when they come.
   */
  async fetch(randoms: readonly Uint8Array[]): Promise<void> {
    if (!this.lookup) return;
    const wanted = randoms.filter((r) => !this.known.has(hex(r)));
    if (wanted.length === 0) return;
    let entries: Awaited<ReturnType<KeyLookup["waitForKeys"]>>;
    try {
      entries = await this.lookup.waitForKeys(wanted, this.waitMs);
    } catch (err) {
      this.lookLater(wanted);
      throw err;
    }
    this.add(entries);
    this.counters.counter("stitcher_key_hits").add(entries.length);
    const missing = wanted.length - entries.length;
    if (missing > 0) {
      this.counters.counter("stitcher_key_misses").add(missing);
      this.lookLater(wanted);
    }
  }

  private add(entries: Awaited<ReturnType<KeyLookup["waitForKeys"]>>): number {
    let added = 0;
    for (const e of entries) {
      if (this.known.has(hex(e.clientRandom))) continue;
      this.known.add(hex(e.clientRandom));
      this.store.addKeyLog(e.keyLogLines, Date.now());
      added++;
    }
    return added;
  }

  /** Keys that land later (or a broker back from a restart): waited for in the background, in rounds. */
  private lookLater(randoms: readonly Uint8Array[]): void {
    const lookup = this.lookup;
    if (!lookup) return;
    const deadline = Date.now() + this.lateKeysMs;
    const round = Math.max(this.waitMs * 6, 30_000);
    void (async () => {
      for (;;) {
        const late = randoms.filter((r) => !this.known.has(hex(r)));
        if (late.length === 0 || Date.now() > deadline) return;
        try {
          const more = await lookup.waitForKeys(late, Math.min(round, Math.max(1000, deadline - Date.now())));
          if (this.add(more) > 0) for (const s of this.stitchers) s.keysAdded();
        } catch {
          this.counters.counter("stitcher_key_errors").add(1);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    })();
  }
}

export async function startStitchStage(options: StitchStageOptions): Promise<StitchStage> {
  const { bus, run, counters, log, signal } = options;
  const lateness = options.latenessNs ?? DEFAULT_STITCH_LATENESS_NS;
  const keys = new BrokeredKeys(options.keys, options.keyWaitMs ?? 5000, counters);
  const statuses = new Map<number, () => ShardStatus>();
  const deliveryLatency = new StageLatency(counters, MeshStage.ChunkDelivery);
  const holdLatency = new StageLatency(counters, MeshStage.StitchHold);
  const pullMessages = pullMessagesPerShard(
    options.pullBytes ?? DEFAULT_STITCH_PULL_BYTES,
    options.pullShards ?? options.shards.length,
  );
  const roundtripLatency = new StageLatency(counters, MeshStage.MirrorRoundtrip);
  // The fetchers own the streams' settings (limits); the stitcher waits for them to exist.
  for (let attempt = 0; ; attempt++) {
    signal.throwIfAborted();
    const found = await bus.jsm.streams.info(StreamName.Chunks).then(
      () => true,
      () => false,
    );
    if (found) break;
    if (attempt === 0) log.info("waiting for the chunk stream", { stream: StreamName.Chunks });
    // Every 100 ms for the first 10 s (the fetchers start beside the stitchers, and a doubling wait would
    // leave the blobs waiting up to twice the time the stream took to appear), then every 2 s.
    await sleep(attempt < 100 ? 100 : 2000, signal);
  }
  const runShard = async (shard: number, signal: AbortSignal): Promise<void> => {
    const durable = stitcherConsumer(run, shard);
    await ensureConsumer(bus.jsm, StreamName.Chunks, durable, {
      filterSubject: chunkSubject(run, shard),
      ackWaitMs: options.ackWaitMs ?? 30_000,
      maxAckPending: options.maxAckPending ?? 20_000,
    });
    // The shard's backlog in JetStream (cloudtap status): not yet delivered, and delivered but unacked (held
    // here, or held by a dead process until its ack wait ends). Read from the start, before the mirror stream
    // opens: a stitcher waiting for an egress that is down (restarting on a full NDR) is exactly when the
    // backlog grows, and a shard that reported nothing would read as an empty one.
    const readBacklog = () =>
      consumerPending(bus.jsm, StreamName.Chunks, durable).then(
        (p) => {
          const labels = { shard: String(shard) };
          counters.gauge("stitcher_backlog_messages", labels).set(p.pending);
          counters.gauge("stitcher_unacked_messages", labels).set(p.ackPending);
        },
        () => {},
      );
    void readBacklog();
    const backlogTimer = setInterval(readBacklog, 2000);
    backlogTimer.unref?.();
    // Unacked messages at the start are a dead predecessor's (one process per shard). They come back after
    // their ack wait, behind messages the predecessor never got: a connection it held is then rebuilt from
    // its first record only when those arrive, seconds of record time after this process has seen newer
    // records. Until they are back (`awaitedRedeliveries`, counted down by deliveries of a message a second
    // time), nothing acts on record time: no timeout, no hole given up as a gap, no time-order release, or
    // those connections would be cut short in the output. Bounded by twice the ack wait.
    const startPending = await consumerPending(bus.jsm, StreamName.Chunks, durable).catch(() => undefined);
    const predecessorOutstanding = startPending === undefined || startPending.ackPending > 0;
    let awaitedRedeliveries = startPending?.ackPending ?? 0;
    const redeliveryDeadline = Date.now() + 2 * (options.ackWaitMs ?? 30_000) + 5000;
    if (awaitedRedeliveries > 0)
      log.info("waiting for a predecessor's unacked messages before acting on record time", {
        shard,
        messages: awaitedRedeliveries,
      });
    const awaitingRedeliveries = (): boolean => {
      if (awaitedRedeliveries > 0 && Date.now() > redeliveryDeadline) {
        log.warn("a predecessor's messages did not all come back: acting on record time again", {
          shard,
          missing: awaitedRedeliveries,
        });
        awaitedRedeliveries = 0;
      }
      return awaitedRedeliveries > 0;
    };
    const mirror = options.mirror(shard);
    const opened = await mirror.open().catch((err: unknown) => {
      clearInterval(backlogTimer);
      throw err;
    });
    const recorder = new FrameBatchRecorder();
    const tracer = new ShardTracer(shard, run, options.flowTraceRatio ?? 0);
    const stitcher = createStitcherFromSettings(
      {
        // Both directions merged by record time: batches of one connection arrive in any blob order.
        reorderWindowNs: lateness,
        ...options.settings,
        encapsulationBytes: opened.encapsulationBytes,
        tls: {
          variant: options.variant,
          ...(options.cleartextPorts ? { cleartextPorts: options.cleartextPorts } : {}),
          embedKeys: opened.embedsKeys,
        },
      },
      {
        sink: recorder,
        // A message's bytes are never reused (the NATS client reads into fresh buffers; the CTAP reader's
        // records are views of them): held events can keep views.
        stableInput: true,
        keys: keys.store,
        embedKeys: (text) => recorder.embedKeys(text),
        onFlowComplete: (flow) => {
          recorder.connectionEnded(flow.flow.connId);
          tracer.flowComplete(flow);
        },
      },
    );
    keys.register(stitcher);
    const held: HeldMessage[] = [];
    const heldBySeq = new Map<number, HeldMessage>();
    /** Connections of held messages. */
    const heldConns = new Map<string, HeldMessage[]>();
    let seq = 0n;
    let acked = 0n;
    let done = false;
    const sends: Promise<void>[] = [];
    /**
     * The mirror stream broke (the egress died): the batches not acked may be lost, so this shard stops and
     * the stage fails; its messages stay unacked and come back, after the ack wait, to the restarted process.
     */
    let mirrorFailure: unknown;
    let stopPulling: (() => Promise<void>) | undefined;

    /** TLS connection problems logged so far (the stitcher lists the first 100; all are counted). */
    let tlsNamed = 0;
    const tableGauges = () => {
      const t = flowTableCountersOf(stitcher);
      const labels = { shard: String(shard) };
      counters.gauge("stitcher_late_records", labels).set(t.lateRecords);
      counters.gauge("stitcher_gaps", labels).set(t.gaps);
      counters.gauge("stitcher_gap_bytes", labels).set(t.gapBytes);
      counters.gauge("stitcher_duplicate_bytes", labels).set(t.duplicateBytes);
      // Items the flow table and the UDP path dropped, each reason in its own unit's count.
      counters.gauge("stitcher_dropped", { ...labels, reason: "flow_table_full" }).set(t.droppedNewFlows);
      counters
        .gauge("stitcher_dropped", { ...labels, reason: "duplicate_datagram" })
        .set(t.duplicateDatagrams);
      counters.gauge("stitcher_dropped", { ...labels, reason: "ignored_record" }).set(t.recordsIgnored);
      counters
        .gauge("stitcher_dropped", { ...labels, reason: "oversized_datagram" })
        .set(stitcher.stats.udp.oversizedDatagrams);
      counters.gauge("stitcher_flows", labels).set(t.flows);
      counters.gauge("stitcher_held_messages", labels).set(held.length);
      const st = stitcher.stats;
      counters.gauge("stitcher_flows_tcp", labels).set(st.flowsTcp);
      counters.gauge("stitcher_flows_udp", labels).set(st.flowsUdp);
      counters.gauge("stitcher_packets", labels).set(st.packets);
      for (const [outcome, n] of Object.entries(st.tls.outcomes))
        counters.gauge("stitcher_tls_outcome", { ...labels, outcome }).set(n);
      // Connections decrypted with a later candidate set (their client random was logged with other secrets
      // too), and each listed TLS connection problem named once, by id and flow, as `cloudtap stitch` names it.
      counters.gauge("stitcher_tls_candidate_rejections", labels).set(st.tls.candidateRejections);
      for (; tlsNamed < st.tls.connections.length; tlsNamed++) {
        const c = st.tls.connections[tlsNamed]!;
        log.warn("tls connection problem", {
          shard,
          connection: c.connId,
          flow: c.flow,
          outcome: c.outcome,
          ...(c.detail === undefined ? {} : { detail: c.detail }),
          candidatesRejected: c.candidatesRejected,
        });
      }
    };
    const gaugeTimer = setInterval(tableGauges, 1000);
    gaugeTimer.unref?.();
    statuses.set(shard, () => ({
      shard,
      done,
      heldMessages: held.length,
      stitcher: stitcherCountersOf(stitcher),
      gaps: flowTableCountersOf(stitcher).gaps,
    }));

    /** Sends what the stitcher made since the last batch (in batches of at most 1 MiB); the last number. */
    const ship = (): bigint => {
      const batches = recorder.takeBatches(MAX_MIRROR_BATCH_BYTES);
      const links = batches.length > 0 ? tracer.takeLinks() : { links: [], dropped: 0 };
      const shippedAt = Date.now();
      for (const batch of batches) {
        const mine = ++seq;
        counters.counter("stitcher_batches_sent", { shard: String(shard) }).add(1);
        counters.counter("stitcher_frames_sent").add(batch.frames);
        forEachFrameMs(batch.bytes, (tsMs) => {
          const arrived = arrivals.arrivalOf(tsMs);
          if (arrived !== undefined) holdLatency.observe(shippedAt - arrived);
        });
        const traced = tracer.batch(mine, batch.frames, batch.bytes.length, links);
        const sent = mirror.send(mine, batch.bytes, traced.trace, batch.headroom).then(() => {
          roundtripLatency.observe(Date.now() - shippedAt, batch.frames);
          if (mine > acked) acked = mine;
          ackReady();
        });
        sent.then(
          () => traced.span.end(),
          (err: unknown) => {
            recordError(traced.span, err);
            traced.span.end();
          },
        );
        sends.push(sent);
        sent
          .catch((err: unknown) => {
            counters.counter("stitcher_mirror_failures", { shard: String(shard) }).add(1);
            log.warn("mirror batch not acknowledged", { shard, batch: Number(mine), error: String(err) });
            if (mirrorFailure === undefined) {
              mirrorFailure = err;
              void stopPulling?.();
            }
          })
          .finally(() => {
            const at = sends.indexOf(sent);
            if (at >= 0) sends.splice(at, 1);
          });
      }
      if (batches.length > 0 && stitcher.releasedUpToNs > 0n)
        arrivals.forgetBefore(Number(stitcher.releasedUpToNs) / 1e6);
      return seq;
    };

    /**
     * Tells the egress how far this stream is known to be (so its time merge need not wait for a frame
     * of this shard to pass a time): what the time order released, or the newest frame sent; and whether
     * the shard is idle (no message for `idleAfterMs`, every batch acked). Sent on the mirror stream after
     * the batches shipped before it.
     */
    let declaredNs = 0n;
    let declaredIdle = false;
    const declare = (heartbeat: boolean) => {
      const idle =
        options.idleAfterMs !== undefined &&
        Date.now() - lastMessageAt >= options.idleAfterMs &&
        sends.length === 0 &&
        recorder.size === 0;
      let w = stitcher.releasedUpToNs;
      // Idle: every batch was acked, so the newest frame recorded was sent.
      const newest = recorder.newestFrameNs;
      if (idle && newest !== undefined && newest > w) w = newest;
      if (w <= declaredNs && idle === declaredIdle && !heartbeat) return;
      if (w > declaredNs) declaredNs = w;
      declaredIdle = idle;
      mirror.heartbeat?.(declaredNs > 0n ? declaredNs : undefined, idle);
    };

    /** Messages whose connections are all released, and whose last batch the egress acknowledged. */
    const ackReady = () => {
      let kept = 0;
      for (const h of held) {
        if (h.readySeq !== undefined && h.readySeq <= acked) {
          h.msg.ack();
          heldBySeq.delete(h.msg.seq);
          counters.counter("stitcher_messages_acked").add(1);
        } else held[kept++] = h;
      }
      held.length = kept;
    };

    /**
     * After batch `upTo` was shipped: connections the stitcher no longer holds release their messages (but
     * those in `keep`).
     */
    const sweep = (upTo: bigint, keep?: ReadonlySet<string>) => {
      for (const [conn, messages] of heldConns) {
        // Held by the stitcher, or with frames still in its time-order stage (the flow's end comes after them).
        if (stitcher.holdsConnection(conn) || recorder.hasOpenFlows(conn) || keep?.has(conn)) continue;
        heldConns.delete(conn);
        for (const h of messages) {
          h.conns.delete(conn);
          if (h.conns.size === 0) h.readySeq = upTo;
        }
      }
      ackReady();
    };

    /**
     * Shutdown (continuous mode): what the stitcher holds goes out, so the sinks get every frame made from
     * what was consumed. Messages are acked only for connections that had completed before the flush; a
     * connection still open is cut here, and its messages go back to JetStream unacked (nak), so the next
     * stitcher rebuilds it whole at once (this run's output has its part so far).
     */
    const flushOnShutdown = async () => {
      const open = new Set([...heldConns.keys()].filter((conn) => stitcher.holdsConnection(conn)));
      stitcher.flushAll();
      sweep(ship(), open);
      await Promise.allSettled(sends);
      sweep(seq, open);
      tableGauges();
      // What stays unacked (the open connections' messages) goes back to JetStream now instead of after its
      // ack wait: the shard's next owner (this stitcher restarted, or another after a handover) gets it at
      // once and rebuilds those connections without first waiting for a predecessor's messages.
      for (const h of held) h.msg.nak();
      counters.counter("stitcher_messages_returned").add(held.length);
      log.info("shard flushed on shutdown", {
        shard,
        openConnections: open.size,
        heldMessages: held.length,
        returnedMessages: held.length,
        batchesSent: Number(seq),
        batchesAcked: Number(acked),
      });
    };

    // Well inside the ack wait, so a held message is never redelivered while this process lives.
    const ackWaitMs = options.ackWaitMs ?? 30_000;
    const working = setInterval(
      () => {
        for (const h of held) h.msg.working();
      },
      options.workingEveryMs ?? Math.max(250, Math.floor(ackWaitMs / 3)),
    );
    working.unref?.();

    let lastMessageAt = Date.now();
    const arrivals = new ArrivalClock();
    const heartbeatMs =
      options.heartbeatMs ??
      (options.idleAfterMs === undefined ? 5000 : Math.min(5000, Math.max(200, options.idleAfterMs / 4)));
    const heartbeat = setInterval(() => declare(true), heartbeatMs);
    heartbeat.unref?.();
    // The record clock run on by the wall clock while no message comes (advanceWhenIdle).
    let busy = false;
    let advancedTo = 0n;
    const advanceTick = Math.max(20, Math.min(100, Number(lateness / 10_000_000n)));
    const advance = options.advanceWhenIdle
      ? setInterval(() => {
          if (busy || signal.aborted || mirrorFailure !== undefined || stitcher.table.now <= 0n) return;
          if (awaitingRedeliveries()) return;
          const silentNs = BigInt(Date.now() - lastMessageAt) * 1_000_000n;
          const watermark = stitcher.table.now - lateness + (silentNs < lateness ? silentNs : lateness);
          if (watermark <= advancedTo || watermark <= 0n) return;
          advancedTo = watermark;
          stitcher.flushOlderThan(watermark);
          sweep(ship());
          declare(false);
        }, advanceTick)
      : undefined;
    advance?.unref?.();

    /**
     * A one-shot window's watermark (the fetchers': every blob starting before it is on this shard already):
     * timeouts, gap waits and the time order act at it, as a one-process stitch does at a blob's start. Not
     * in a process that found messages of a dead predecessor unacked when it started: they come back after
     * their ack wait, in any order with the marks, and may be older than one; that process keeps to the
     * lateness bound alone, as before the marks.
     */
    let ignoredLogged = false;
    let marksApplied = 0;
    const applyWatermark = (markNs: bigint) => {
      if (markNs <= advancedTo) return;
      if (predecessorOutstanding) {
        if (!ignoredLogged) {
          ignoredLogged = true;
          log.info("watermarks ignored: a dead predecessor's messages are unacked", { shard });
        }
        counters.counter("stitcher_watermarks_ignored", { shard: String(shard) }).add(1);
        return;
      }
      if (marksApplied++ === 0)
        log.info("releasing at the fetchers' watermarks", { shard, watermarkNs: String(markNs) });
      advancedTo = markNs;
      counters.counter("stitcher_watermarks", { shard: String(shard) }).add(1);
      stitcher.noRecordsBefore(markNs);
      stitcher.flushOlderThan(markNs);
      sweep(ship());
      declare(false);
    };

    const stream = await consumeMessages(bus.js, StreamName.Chunks, durable, {
      maxMessages: pullMessages,
      signal,
    });
    stopPulling = () => stream.stop();
    try {
      for await (const msg of stream) {
        if (mirrorFailure !== undefined) break;
        lastMessageAt = Date.now();
        busy = true;
        if (getHeader(msg.headers, MeshHeader.Eof) === "1") {
          busy = false;
          // The end of the window only once nothing before it is outstanding: messages a dead predecessor
          // held come back after their ack wait, possibly after the marker. Until then the marker waits.
          const outstanding = await consumerPending(bus.jsm, StreamName.Chunks, durable);
          if (outstanding.pending > 0 || outstanding.ackPending > held.length + 1) {
            counters.counter("stitcher_eof_deferred", { shard: String(shard) }).add(1);
            log.debug("end of window deferred", { shard, ...outstanding, held: held.length });
            msg.nak(1000);
            continue;
          }
          const eofSpan = tracer.endOfWindow();
          await withContext(contextOf(eofSpan), async () => {
            stitcher.flushAll();
            const last = ship();
            sweep(last);
            await Promise.allSettled(sends);
            sweep(seq);
          });
          eofSpan.end();
          msg.ack();
          done = held.length === 0;
          tableGauges();
          if (done)
            await Promise.resolve(options.onShardDone?.(shard)).catch((err: unknown) =>
              log.warn("shard done not recorded", {
                shard,
                error: err instanceof Error ? err.message : String(err),
              }),
            );
          log.info("end of window", {
            shard,
            held: held.length,
            ...(held.length > 0
              ? {
                  batchesSent: Number(seq),
                  batchesAcked: Number(acked),
                  waitingOn: [...new Set(held.flatMap((h) => [...h.conns]))].slice(0, 5),
                  readySeqs: held.slice(0, 5).map((h) => String(h.readySeq)),
                }
              : {}),
          });
          if (done) break;
          continue;
        }
        const mark = getHeader(msg.headers, MeshHeader.Watermark);
        if (mark !== undefined) {
          busy = false;
          applyWatermark(BigInt(mark));
          msg.ack();
          continue;
        }
        if (msg.deliveryCount > 1 && awaitedRedeliveries > 0 && !heldBySeq.has(msg.seq))
          awaitedRedeliveries--;
        const already = heldBySeq.get(msg.seq);
        if (already) {
          // A redelivery of a message this process holds (its working() came late): keep the newer handle.
          counters.counter("stitcher_redeliveries_of_held").add(1);
          already.msg = msg;
          busy = false;
          continue;
        }
        const entry: HeldMessage = { msg, conns: new Set(), readySeq: undefined };
        heldBySeq.set(msg.seq, entry);
        const consumeSpan = tracer.consume(msg.headers, getHeader(msg.headers, MeshHeader.Blob), msg.seq);
        const consumeContext = contextOf(consumeSpan);
        const records = [];
        const randoms: Uint8Array[] = [];
        try {
          for await (const item of readCtap([msg.data], { onCorruption: "resync" })) {
            if (item.type === "corruption") {
              counters.counter("stitcher_batch_problems", { kind: item.error.code }).add(1);
              continue;
            }
            if (item.type === "header" || item.type === "blob-end") continue;
            records.push(item);
            if (item.type === "data" && item.direction === Direction.ClientToServer && item.offset === 0) {
              const cr = peekClientRandom(item.payload);
              if (cr) {
                randoms.push(cr);
                tracer.flowRecord(item.connId, consumeContext);
                tracer.clientHello(item.connId);
              }
            }
          }
        } catch (err) {
          counters.counter("stitcher_batch_problems", { kind: "undecodable" }).add(1);
          log.warn("chunk batch does not decode", { shard, seq: msg.seq, error: String(err) });
        }
        if (msg.deliveryCount === 1) {
          const published = Number(getHeader(msg.headers, PUBLISHED_MS_HEADER));
          if (published > 0) deliveryLatency.observe(lastMessageAt - published, records.length);
        }
        let newestNs = -1n;
        for (const r of records) if (r.timestampNs > newestNs) newestNs = r.timestampNs;
        if (newestNs > 0n) arrivals.note(Number(newestNs) / 1e6, lastMessageAt);
        if (randoms.length > 0) {
          await withContext(consumeContext, () => keys.fetch(randoms)).catch((err: unknown) => {
            counters.counter("stitcher_key_errors").add(1);
            log.warn("key broker lookup failed", { error: err instanceof Error ? err.message : String(err) });
          });
        }
        for (const record of records) {
          if ("connId" in record) {
            const conn = record.connId;
            tracer.flowRecord(conn, consumeContext);
            if (!entry.conns.has(conn)) {
              entry.conns.add(conn);
              const list = heldConns.get(conn);
              if (list) list.push(entry);
              else heldConns.set(conn, [entry]);
            }
          }
          stitcher.accept(record);
        }
        counters.counter("stitcher_records").add(records.length);
        // Blobs reach a shard out of time order (several fetchers, late uploads): timeouts and gap waits
        // act at the newest record time less the lateness bound, a watermark, so that an early-processed
        // later blob does not time out or gap the connections of the blobs still to come.
        const watermark = stitcher.table.now - lateness;
        if (watermark > 0n && !awaitingRedeliveries()) {
          stitcher.flushOlderThan(watermark);
          if (watermark > advancedTo) advancedTo = watermark;
        }
        if (entry.conns.size === 0) entry.readySeq = seq;
        held.push(entry);
        withContext(consumeContext, () => sweep(ship()));
        declare(false);
        busy = false;
        consumeSpan.setAttribute(Attr.BatchRecords, records.length);
        consumeSpan.end();
        // Back-pressure: a slow egress holds this loop, and JetStream keeps the backlog.
        while (sends.length > 8) await Promise.race(sends).catch(() => {});
        // The client hands out the messages it has buffered without a turn of the event loop: without one
        // here, the batches this message made would reach the socket (and the egress's acks this process)
        // only once the buffer is empty, up to 64 messages later, a second at full rate.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (mirrorFailure !== undefined)
        throw new Error(`shard ${shard}: the mirror stream failed (${String(mirrorFailure)})`);
      if (signal.aborted && !done) await flushOnShutdown();
      else if (!done) throw new Error(`shard ${shard}: the chunk consumer ended`);
    } finally {
      clearInterval(working);
      clearInterval(heartbeat);
      if (advance) clearInterval(advance);
      clearInterval(gaugeTimer);
      clearInterval(backlogTimer);
      tableGauges();
      await stream.stop();
      await Promise.allSettled(sends);
      await mirror.close();
      tracer.endAll();
    }
  };
  const running = new Map<number, { readonly stop: AbortController; readonly loop: Promise<void> }>();
  let failStage: (err: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    failStage = reject;
  });
  failed.catch(() => {});
  const launch = (shard: number): Promise<void> => {
    const stop = new AbortController();
    const loop = runShard(shard, AbortSignal.any([signal, stop.signal])).finally(() => {
      running.delete(shard);
      if (options.elastic) {
        // Another stitcher has it now: this process reports nothing of it any more.
        statuses.delete(shard);
        const labels = { shard: String(shard) };
        counters.gauge("stitcher_backlog_messages", labels).set(0);
        counters.gauge("stitcher_unacked_messages", labels).set(0);
        counters.gauge("stitcher_held_messages", labels).set(0);
      }
    });
    running.set(shard, { stop, loop });
    if (options.elastic) loop.catch(failStage);
    return loop;
  };
  const loops = options.shards.map(launch);
  const finished = options.elastic
    ? Promise.race([
        failed,
        (async () => {
          if (!signal.aborted)
            await new Promise<void>((resolve) =>
              signal.addEventListener("abort", () => resolve(), { once: true }),
            );
          while (running.size > 0) await Promise.all([...running.values()].map((r) => r.loop));
        })(),
      ])
    : Promise.all(loops).then(() => {});
  return {
    finished,
    status: () => [...statuses.values()].map((s) => s()),
    startShard: (shard) => {
      if (!running.has(shard) && !signal.aborted) launch(shard);
    },
    stopShard: async (shard) => {
      const r = running.get(shard);
      if (!r) return;
      r.stop.abort();
      await r.loop.catch(() => {});
    },
    running: () => [...running.keys()].sort((a, b) => a - b),
  };
}
