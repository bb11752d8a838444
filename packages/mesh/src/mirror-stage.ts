/**
 * The mirror stream, both ends. mirror-egress serves `MirrorService.StreamPackets` with `mirrorHandlers`:
 * each stitcher stream opens with what the egress's outputs need (the tunnels' encapsulation bytes, whether
 * an output embeds keys), then every packet batch is replayed into the egress (`FrameBatchReplayer`), its
 * chunks are written to the sinks, and only then is the batch acked (the second link of the ack chain).
 * Batches of several streams are written one at a time, so each sink gets whole chunks in order.
 *
 * `grpcMirrorLink` is the stitcher's end: batches go out with at most `maxInFlight` unacknowledged (the
 * egress's number), so a slow NDR slows the stitcher, which stops pulling from JetStream: the backlog
 * stays in JetStream, not in memory.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { OpenedEgress } from "@cloudtap/egress";
import { FrameBatchReplayer } from "@cloudtap/mirror";
import type { MirrorService, StreamPacketsRequestSchema, StreamPacketsResponse } from "@cloudtap/proto";
import type { ServiceClient, ServiceHandlers } from "@cloudtap/rpc";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";
import type { MirrorLink } from "./stitch-stage.js";

export const DEFAULT_MIRROR_MAX_IN_FLIGHT = 8;

export interface MirrorHandlerOptions {
  readonly egress: OpenedEgress;
  readonly maxInFlight?: number;
  readonly counters: CounterRegistry;
  readonly log: Logger;
}

export function mirrorHandlers(options: MirrorHandlerOptions): ServiceHandlers<typeof MirrorService> {
  const { egress: opened, counters, log } = options;
  const egress = opened.egress;
  let writing: Promise<void> = Promise.resolve();
  /** One batch at a time into the egress and out to the sinks. */
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const run = writing.then(work);
    writing = run.then(
      () => {},
      () => {},
    );
    return run;
  };
  return {
    async *streamPackets(requests, context) {
      const replayer = new FrameBatchReplayer(egress);
      let stitcher = "?";
      try {
        for await (const request of requests) {
          const m = request.message;
          if (m.case === "open") {
            stitcher = m.value.stitcherId;
            log.info("mirror stream opened", { stitcher, peer: context.peer });
            yield {
              message: {
                case: "opened",
                value: {
                  encapsulationBytes: opened.encapsulationBytes,
                  embedsKeys: egress.embedsKeys,
                  maxInFlight: options.maxInFlight ?? DEFAULT_MIRROR_MAX_IN_FLIGHT,
                },
              },
            };
          } else if (m.case === "batch") {
            const { seq, frames } = m.value;
            const count = await exclusive(async () => {
              const n = replayer.replay(frames);
              for (const chunk of egress.drain()) await egress.write(chunk);
              return n;
            });
            counters.counter("egress_batches").add(1);
            counters.counter("egress_frames").add(count);
            yield { message: { case: "ack", value: { seq } } };
          }
        }
      } catch (err) {
        log.warn("mirror stream failed", {
          stitcher,
          error: err instanceof Error ? err.message : String(err),
        });
        throw err;
      } finally {
        replayer.endAll();
        log.info("mirror stream closed", { stitcher });
      }
    },
  };
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
    async send(seq, frames) {
      while (waiting.size >= maxInFlight && failure === undefined)
        await new Promise<void>((resolve) => slotWaiters.push(resolve));
      if (failure !== undefined) throw failure;
      const acked = new Promise<void>((resolve, reject) => waiting.set(seq, { resolve, reject }));
      queue.push({ message: { case: "batch", value: { seq, frames } } });
      return acked;
    },
    async close() {
      queue.close();
      await reading;
    },
  };
}
