/**
 * The mirror stream, both ends. mirror-egress serves `MirrorService.StreamPackets` with `mirrorEndpoint`:
 * each stitcher stream opens with what the egress's outputs need (the tunnels' encapsulation bytes, whether
 * an output embeds keys), then its packet batches go into a `StreamMerge` of `@cloudtap/mirror`, which
 * writes the frames of every stream into the egress in time order, up to the lowest watermark of the
 * streams it waits for (each stream is in time order on its own; several shards and stitchers are not). A
 * batch is acked once all of its frames were written and the sinks accepted the chunks (the second link of
 * the ack chain), so a batch held by the merge is not acked yet: the stitcher ahead of the others slows
 * down to the slowest. Streams are idle when their stitcher says so (`StreamWatermark.idle`) or after
 * `silentAfterMs` without a message; an idle stream is not waited for. Work on the egress is one step at a
 * time, so each sink gets whole chunks in order.
 *
 * `grpcMirrorLink` is the stitcher's end: batches go out with at most `maxInFlight` unacknowledged (the
 * egress's number), so a slow NDR slows the stitcher, which stops pulling from JetStream: the backlog
 * stays in JetStream, not in memory.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { OpenedEgress } from "@cloudtap/egress/node";
import { type FlowDedup, type MergeInput, StreamMerge } from "@cloudtap/mirror";
import {
  type MirrorService,
  StreamPacketsRequestSchema,
  type StreamPacketsResponse,
  type StreamPacketsResponseSchema,
} from "@cloudtap/proto";
import { GRPC_FRAME_HEADER_BYTES, preEncoded, type ServiceClient, type ServiceHandlers } from "@cloudtap/rpc";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";
import {
  Attr,
  contextFromRecord,
  contextOf,
  linkTo,
  recordError,
  type Span,
  SpanKind,
  SpanName,
  startSpan,
  withContext,
} from "@cloudtap/telemetry";
import { MeshStage, StageLatency } from "./stage-latency.js";
import type { MirrorLink } from "./stitch-stage.js";

export const DEFAULT_MIRROR_MAX_IN_FLIGHT = 8;
/** A stream that sent nothing this long is not waited for (its stitcher heartbeats every 5 s). */
export const DEFAULT_MIRROR_SILENT_AFTER_MS = 30_000;

export interface MirrorHandlerOptions {
  readonly egress: OpenedEgress;
  readonly maxInFlight?: number;
  /** Most frame bytes the merge holds. Default 64 MiB. */
  readonly maxHeldBytes?: number;
  readonly silentAfterMs?: number;
  /**
   * Frames already written are dropped (a rebuilt connection's first frames, see `FlowDedup`); the merge
   * writes into it, it into the egress. Default: none.
   */
  readonly dedup?: FlowDedup;
  /**
   * Makes what was written durable (capture files fsynced, the journal written; see `EgressJournal`).
   * When given, every write hands out the outputs' open chunks too (`flush()`), and a batch is acked only
   * after a commit that follows its last frame: an acked batch survives a kill of the egress. Commits are
   * grouped, at most one per `commitEveryMs` (default 20 ms).
   */
  readonly commit?: () => Promise<void>;
  readonly commitEveryMs?: number;
  /**
   * A sink refused a write, or a commit failed (a full disk, a failing device): nothing of it was acked.
   * mirror-egress exits then, so that it restarts from its journal once the sink works again (a capture
   * file keeps its first write error); the stitchers hold their messages meanwhile and JetStream the backlog.
   */
  readonly onSinkFailure?: (err: unknown, sink: string) => void;
  readonly counters: CounterRegistry;
  readonly log: Logger;
}

export interface MirrorEndpoint {
  readonly handlers: ServiceHandlers<typeof MirrorService>;
  /** Writes every frame the merge still holds into the egress's sinks (before they are flushed). */
  flush(): Promise<void>;
  /** Stops the silence timer. */
  close(): void;
}

type Response = MessageInitShape<typeof StreamPacketsResponseSchema>;

/** A queue of responses one stream's generator yields from. */
class ResponseQueue {
  private readonly items: Response[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private failure: unknown;

  push(item: Response): void {
    this.items.push(item);
    this.wake?.();
  }

  close(failure?: unknown): void {
    this.closed = true;
    this.failure ??= failure;
    this.wake?.();
  }

  async *drain(): AsyncGenerator<Response> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.closed) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}

interface OpenStream {
  readonly input: MergeInput;
  readonly responses: ResponseQueue;
  /** Batches not yet acked, in order: acked once the merge applied their last event. */
  readonly pending: { seq: bigint; endEvent: number; span: Span; receivedAt: number; frames: number }[];
  heardAt: number;
  readonly stitcher: string;
}

export function mirrorEndpoint(options: MirrorHandlerOptions): MirrorEndpoint {
  const { egress: opened, counters, log } = options;
  const egress = opened.egress;
  const dedup = options.dedup;
  const merge = new StreamMerge(dedup ?? egress, {
    ...(options.maxHeldBytes === undefined ? {} : { maxHeldBytes: options.maxHeldBytes }),
  });
  const streams = new Set<OpenStream>();
  const holdLatency = new StageLatency(counters, MeshStage.EgressHold);
  const writeLatency = new StageLatency(counters, MeshStage.EgressWrite);
  const silentAfterMs = options.silentAfterMs ?? DEFAULT_MIRROR_SILENT_AFTER_MS;
  let writing: Promise<void> = Promise.resolve();
  /** One step at a time into the egress and out to the sinks. */
  const exclusive = <T>(work: () => Promise<T> | T): Promise<T> => {
    const run = writing.then(work);
    writing = run.then(
      () => {},
      () => {},
    );
    return run;
  };
  const gauges = () => {
    counters.gauge("egress_merge_held_bytes").set(merge.heldFrameBytes);
    counters.gauge("egress_merge_peak_held_bytes").set(merge.stats.peakHeldBytes);
    counters.gauge("egress_merge_late_frames").set(merge.stats.lateFrames);
    counters.gauge("egress_merge_overflow_frames").set(merge.stats.overflowFrames);
    counters.gauge("egress_streams").set(streams.size);
    if (dedup) {
      counters.gauge("egress_duplicate_frames").set(dedup.stats.duplicateFrames);
      counters.gauge("egress_duplicate_key_logs").set(dedup.stats.duplicateKeyLogs);
      counters.gauge("egress_dedup_entries").set(dedup.size);
      counters.gauge("egress_dedup_forgotten_flows").set(dedup.stats.forgottenFlows);
      counters.gauge("egress_dedup_unrecorded_frames").set(dedup.stats.unrecordedFrames);
    }
    counters.gauge("egress_batches_awaiting_commit").set(awaitingCommit.length);
  };
  /** Batches written whole, waiting for the next commit to be acked (with `commit` only). */
  const awaitingCommit: { s: OpenStream; seq: bigint; span: Span; releasedAt: number; frames: number }[] = [];
  let commitTimer: ReturnType<typeof setTimeout> | undefined;
  /** Makes the writes so far durable, then acks the batches they completed. */
  const commitNow = async () => {
    if (!options.commit || awaitingCommit.length === 0) return;
    const ready = awaitingCommit.splice(0);
    try {
      await options.commit();
    } catch (err) {
      // A full or failing disk: nothing is acked, the stitchers hold their messages, JetStream the backlog.
      awaitingCommit.unshift(...ready);
      counters.counter("egress_commit_failures").add(1);
      log.warn("egress commit failed: batches stay unacked", {
        batches: ready.length,
        error: err instanceof Error ? err.message : String(err),
      });
      options.onSinkFailure?.(err, "commit");
      scheduleCommit(1000);
      return;
    }
    counters.counter("egress_commits").add(1);
    const committedAt = Date.now();
    for (const r of ready) {
      writeLatency.observe(committedAt - r.releasedAt, r.frames);
      r.s.responses.push({ message: { case: "ack", value: { seq: r.seq } } });
      r.span.end();
    }
    gauges();
  };
  const scheduleCommit = (delayMs = options.commitEveryMs ?? 20) => {
    if (commitTimer || !options.commit) return;
    commitTimer = setTimeout(() => {
      commitTimer = undefined;
      void exclusive(commitNow).catch((err: unknown) =>
        log.warn("egress commit failed", { error: err instanceof Error ? err.message : String(err) }),
      );
    }, delayMs);
  };
  /**
   * Writes what the merge releases, then acks every batch that is written whole. Each sink's write is a
   * span (the child of the batch being handled, linked to the batches this write completed).
   */
  const pump = async (all = false) => {
    const frames = all ? merge.releaseAll() : merge.release();
    const releasedAt = Date.now();
    const writes = [];
    for (const output of egress.outputs) {
      // Durable: the open chunks too, so a commit covers every frame released so far.
      const chunks = options.commit ? output.flush() : output.drain();
      if (chunks.length === 0) continue;
      const start = Date.now();
      let bytes = 0;
      let failure: unknown;
      try {
        for (const chunk of chunks) {
          bytes += chunk.length;
          await output.write(chunk);
        }
      } catch (err) {
        failure = err;
      }
      writes.push({ output, chunks: chunks.length, bytes, start, end: Date.now(), failure });
      if (failure !== undefined) break;
    }
    const completed: Span[] = [];
    const failed = writes.find((w) => w.failure !== undefined);
    if (!failed) {
      counters.counter("egress_frames").add(frames);
      const writtenAt = Date.now();
      for (const s of streams) {
        let n = 0;
        while (n < s.pending.length && s.pending[n]!.endEvent <= s.input.applied) {
          const p = s.pending[n]!;
          holdLatency.observe(releasedAt - p.receivedAt, p.frames);
          if (options.commit)
            awaitingCommit.push({ s, seq: p.seq, span: p.span, releasedAt, frames: p.frames });
          else {
            writeLatency.observe(writtenAt - releasedAt, p.frames);
            s.responses.push({ message: { case: "ack", value: { seq: p.seq } } });
            completed.push(p.span);
          }
          n++;
        }
        if (n > 0) s.pending.splice(0, n);
        if (awaitingCommit.length > 0) scheduleCommit();
      }
    }
    for (const w of writes) {
      const span = startSpan(SpanName.EgressWrite, {
        startTime: w.start,
        links: completed.slice(0, 128).map((b) => linkTo(b)),
        attributes: {
          [Attr.EgressSink]: w.output.name,
          [Attr.EgressSinkKind]: w.output.kind,
          [Attr.EgressChunks]: w.chunks,
          [Attr.EgressChunkBytes]: w.bytes,
        },
      });
      if (w.failure !== undefined) recordError(span, w.failure);
      span.end(w.end);
    }
    for (const b of completed) b.end();
    gauges();
    if (failed) {
      counters.counter("egress_sink_failures", { sink: failed.output.name }).add(1);
      options.onSinkFailure?.(failed.failure, failed.output.name);
      throw failed.failure;
    }
  };
  const silence = setInterval(() => {
    const now = Date.now();
    let changed = false;
    for (const s of streams) {
      if (!s.input.idle && now - s.heardAt > silentAfterMs) {
        s.input.watermark(undefined, true);
        counters.counter("egress_streams_silent").add(1);
        log.warn("mirror stream silent: not waited for", { stitcher: s.stitcher, silentMs: now - s.heardAt });
        changed = true;
      }
    }
    if (changed) void exclusive(() => pump()).catch(() => {});
  }, 1000);
  silence.unref?.();

  const handlers: ServiceHandlers<typeof MirrorService> = {
    async *streamPackets(requests, context) {
      const responses = new ResponseQueue();
      let stream: OpenStream | undefined;
      let stitcher = "?";
      const reading = (async () => {
        for await (const request of requests) {
          const m = request.message;
          if (stream) stream.heardAt = Date.now();
          if (m.case === "open") {
            if (stream) continue;
            stitcher = m.value.stitcherId;
            stream = {
              input: merge.open(stitcher),
              responses,
              pending: [],
              heardAt: Date.now(),
              stitcher,
            };
            streams.add(stream);
            log.info("mirror stream opened", { stitcher, peer: context.peer });
            responses.push({
              message: {
                case: "opened",
                value: {
                  encapsulationBytes: opened.encapsulationBytes,
                  embedsKeys: egress.embedsKeys,
                  maxInFlight: options.maxInFlight ?? DEFAULT_MIRROR_MAX_IN_FLIGHT,
                },
              },
            });
          } else if (m.case === "batch" && stream) {
            const s = stream;
            const { seq, frames, traceContext } = m.value;
            const receivedAt = Date.now();
            // The batch's span: the child of the stitcher's span of it; ended when the batch is acked.
            const span = startSpan(SpanName.EgressBatch, {
              parent: contextFromRecord(traceContext),
              kind: SpanKind.CONSUMER,
              attributes: {
                [Attr.MirrorStitcher]: s.stitcher,
                [Attr.MirrorSeq]: Number(seq),
                [Attr.MirrorBytes]: frames.length,
              },
            });
            await withContext(contextOf(span), () =>
              exclusive(async () => {
                const queued = s.input.push(frames);
                s.pending.push({ seq, endEvent: queued.endEvent, span, receivedAt, frames: queued.frames });
                counters.counter("egress_batches").add(1);
                await pump();
              }),
            ).catch((err: unknown) => {
              recordError(span, err);
              span.end();
              throw err;
            });
          } else if (m.case === "watermark" && stream) {
            const s = stream;
            const { watermarkNs, idle } = m.value;
            await exclusive(async () => {
              s.input.watermark(watermarkNs === 0n ? undefined : watermarkNs, idle);
              await pump();
            });
          }
        }
      })();
      reading.then(
        () => responses.close(),
        (err: unknown) => responses.close(err),
      );
      try {
        yield* responses.drain();
      } catch (err) {
        log.warn("mirror stream failed", {
          stitcher,
          error: err instanceof Error ? err.message : String(err),
        });
        throw err;
      } finally {
        const s = stream;
        if (s) {
          s.input.end();
          streams.delete(s);
          await exclusive(() => pump()).catch((err: unknown) =>
            log.warn("egress write failed", { error: err instanceof Error ? err.message : String(err) }),
          );
          for (const p of s.pending) p.span.end();
        }
        log.info("mirror stream closed", { stitcher });
      }
    },
  };
  return {
    handlers,
    flush: () =>
      exclusive(async () => {
        await pump(true);
        await commitNow();
      }),
    close: () => {
      clearInterval(silence);
      if (commitTimer) clearTimeout(commitTimer);
    },
  };
}

/** `mirrorEndpoint(options).handlers` (the merge's flush left to the streams' ends). */
export function mirrorHandlers(options: MirrorHandlerOptions): ServiceHandlers<typeof MirrorService> {
  return mirrorEndpoint(options).handlers;
}

/** A queue that an async iterable of requests reads from. */
class RequestQueue implements AsyncIterable<MessageInitShape<typeof StreamPacketsRequestSchema>> {
  private readonly items: MessageInitShape<typeof StreamPacketsRequestSchema>[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  push(item: MessageInitShape<typeof StreamPacketsRequestSchema>): void {
    this.items.push(item);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}

export interface GrpcMirrorLinkOptions {
  readonly client: ServiceClient<typeof MirrorService>;
  readonly stitcherId: string;
  readonly mtu: number;
  readonly signal?: AbortSignal;
}

/** The stitcher's end of one mirror stream. */
export function grpcMirrorLink(options: GrpcMirrorLinkOptions): MirrorLink {
  const queue = new RequestQueue();
  const waiting = new Map<bigint, { resolve: () => void; reject: (err: unknown) => void }>();
  let maxInFlight = DEFAULT_MIRROR_MAX_IN_FLIGHT;
  /** Senders waiting for an in-flight slot (woken on every ack or failure; each checks again). */
  let slotWaiters: (() => void)[] = [];
  const wakeSenders = () => {
    const woken = slotWaiters;
    slotWaiters = [];
    for (const wake of woken) wake();
  };
  let failure: unknown;
  /** Sends waiting for a slot: a watermark declared meanwhile goes out after their batches. */
  let sendsWaiting = 0;
  let deferredWatermark: { watermarkNs: bigint; idle: boolean } | undefined;
  const pushWatermark = (watermarkNs: bigint, idle: boolean) =>
    queue.push({ message: { case: "watermark", value: { watermarkNs, idle } } });
  let opened: ((o: { encapsulationBytes: number; embedsKeys: boolean }) => void) | undefined;
  let openFailed: ((err: unknown) => void) | undefined;
  const fail = (err: unknown) => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(failure);
    waiting.clear();
    openFailed?.(failure);
    wakeSenders();
  };
  const reading = (async () => {
    const responses: AsyncIterable<StreamPacketsResponse> = options.client.streamPackets(queue, {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for await (const r of responses) {
      const m = r.message;
      if (m.case === "opened") {
        maxInFlight = Math.max(1, m.value.maxInFlight || DEFAULT_MIRROR_MAX_IN_FLIGHT);
        opened?.({ encapsulationBytes: m.value.encapsulationBytes, embedsKeys: m.value.embedsKeys });
      } else if (m.case === "ack") {
        const w = waiting.get(m.value.seq);
        waiting.delete(m.value.seq);
        w?.resolve();
        wakeSenders();
      }
    }
    fail(new Error("the mirror stream ended"));
  })().catch(fail);
  return {
    open() {
      return new Promise((resolve, reject) => {
        opened = resolve;
        openFailed = reject;
        queue.push({
          message: { case: "open", value: { stitcherId: options.stitcherId, mtu: options.mtu } },
        });
      });
    },
    async send(seq, frames, trace, headroom) {
      sendsWaiting++;
      let acked: Promise<void>;
      try {
        while (waiting.size >= maxInFlight && failure === undefined)
          await new Promise<void>((resolve) => slotWaiters.push(resolve));
        if (failure !== undefined) throw failure;
        acked = new Promise<void>((resolve, reject) => waiting.set(seq, { resolve, reject }));
        const request = encodeBatchRequest(seq, frames, trace, headroom);
        // Framed in place when the headroom left before the request holds gRPC's frame header too.
        const prefixFree =
          request.buffer === frames.buffer &&
          request.byteOffset - GRPC_FRAME_HEADER_BYTES >= frames.byteOffset - (headroom ?? 0);
        queue.push(preEncoded(StreamPacketsRequestSchema, request, { prefixFree }));
      } finally {
        sendsWaiting--;
        if (sendsWaiting === 0 && deferredWatermark && failure === undefined) {
          pushWatermark(deferredWatermark.watermarkNs, deferredWatermark.idle);
          deferredWatermark = undefined;
        }
      }
      return acked;
    },
    heartbeat(watermarkNs, idle) {
      if (failure !== undefined) return;
      // A watermark promises that no frame earlier than it follows: it must not overtake a batch that
      // waits for an in-flight slot.
      if (sendsWaiting > 0) {
        const w = watermarkNs ?? 0n;
        const before = deferredWatermark?.watermarkNs ?? 0n;
        deferredWatermark = { watermarkNs: w > before ? w : before, idle };
        return;
      }
      pushWatermark(watermarkNs ?? 0n, idle);
    },
    async close() {
      queue.close();
      await reading;
    },
  };
}

const utf8 = new TextEncoder();

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/**
 * A `StreamPacketsRequest` carrying one batch, in protobuf's binary form: `batch` (2) = `PacketBatch { seq
 * (1), trace_context (3), frames (2) }`, default values left out. The frames field comes last (protobuf
 * allows fields in any order), so all that precedes the frames is one header: with `headroom` bytes free
 * before `frames` in its buffer (a `FrameBatchRecorder` batch has them), the header is written there and the
 * message is a view of that buffer, the frames not copied; without, the frames are copied once (protobuf-es
 * copies a bytes field once per level of message nesting, twice here, on every 1 MiB batch).
 */
export function encodeBatchRequest(
  seq: bigint,
  frames: Uint8Array,
  trace?: Readonly<Record<string, string>>,
  headroom = 0,
): Uint8Array {
  let seqBytes = 0;
  if (seq !== 0n) {
    seqBytes = 1;
    for (let v = BigInt.asUintN(64, seq); v >= 0x80n; v >>= 7n) seqBytes++;
  }
  const entries = Object.entries(trace ?? {}).map(([k, v]) => {
    const key = utf8.encode(k);
    const value = utf8.encode(v);
    const size = 1 + varintBytes(key.length) + key.length + 1 + varintBytes(value.length) + value.length;
    return { key, value, size };
  });
  let inner = seqBytes === 0 ? 0 : 1 + seqBytes;
  for (const e of entries) inner += 1 + varintBytes(e.size) + e.size;
  if (frames.length > 0) inner += 1 + varintBytes(frames.length) + frames.length;
  const total = 1 + varintBytes(inner) + inner;
  const header = total - frames.length;
  const inPlace = frames.length > 0 && header <= headroom && header <= frames.byteOffset;
  const out = inPlace
    ? new Uint8Array(frames.buffer, frames.byteOffset - header, total)
    : Buffer.allocUnsafe(total);
  out[0] = 0x12; // field 2 (batch), length-delimited
  let at = writeVarint(out, 1, inner);
  if (seqBytes > 0) {
    out[at++] = 0x08; // field 1 (seq), varint
    let v = BigInt.asUintN(64, seq);
    for (; v >= 0x80n; v >>= 7n) out[at++] = Number(v & 0x7fn) | 0x80;
    out[at++] = Number(v);
  }
  for (const e of entries) {
    out[at++] = 0x1a; // field 3 (trace_context), a map entry
    at = writeVarint(out, at, e.size);
    out[at++] = 0x0a;
    at = writeVarint(out, at, e.key.length);
    out.set(e.key, at);
    at += e.key.length;
    out[at++] = 0x12;
    at = writeVarint(out, at, e.value.length);
    out.set(e.value, at);
    at += e.value.length;
  }
  if (frames.length > 0) {
    out[at++] = 0x12; // field 2 (frames), length-delimited
    at = writeVarint(out, at, frames.length);
    if (!inPlace) out.set(frames, at);
    at += frames.length;
  }
  if (at !== out.length) throw new Error(`encodeBatchRequest: wrote ${at} of ${out.length} bytes`);
  return out;
}
