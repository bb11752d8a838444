/**
 * Durable pull consumers: `ensureConsumer` creates one (explicit ack) or updates the settings that may
 * change; `consumeMessages` iterates its messages until `stop()` or the signal; `consumerPending` says how much
 * is left (not yet delivered + delivered and not yet acked).
 *
 * Lifecycle of a message: exactly one of `ack()`, `nak()`, `term()` ends it; `working()` any number of times
 * before that resets the ack wait (a long job holds a message without having it redelivered). A message
 * neither acked nor nak'ed within the ack wait is redelivered, to this or another process of the same
 * durable. The message's `data` is the client's buffer for that message: it stays valid.
 */
import {
  AckPolicy,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { type MsgHdrs, nanos } from "@nats-io/transport-node";

export interface EnsureConsumerOptions {
  readonly filterSubject: string;
  /** Default 30 s. */
  readonly ackWaitMs?: number;
  /** Messages delivered and not yet acked, over all processes of the durable. Default 1000. */
  readonly maxAckPending?: number;
  /** Deliveries before the server gives up on a message; default unlimited. */
  readonly maxDeliver?: number;
}

function isConsumerNotFound(err: unknown): boolean {
  return (
    (err as { name?: string }).name === "ConsumerNotFoundError" || (err as { code?: number }).code === 10014
  );
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  options: EnsureConsumerOptions,
): Promise<ConsumerInfo> {
  const ack_wait = nanos(options.ackWaitMs ?? 30_000);
  const max_ack_pending = options.maxAckPending ?? 1000;
  const max_deliver = options.maxDeliver ?? -1;
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
  }
  if (!info) {
    try {
      return await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: options.filterSubject,
        ack_wait,
        max_ack_pending,
        max_deliver,
      });
    } catch (err) {
      // A sibling process created it first.
      info = await jsm.consumers.info(stream, durable).catch(() => {
        throw err;
      });
    }
  }
  const c = info.config;
  if (
    c.ack_wait === ack_wait &&
    c.max_ack_pending === max_ack_pending &&
    (c.max_deliver ?? -1) === max_deliver
  ) {
    return info;
  }
  return jsm.consumers.update(stream, durable, { ack_wait, max_ack_pending, max_deliver });
}

export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  /** The message's sequence in its stream. */
  readonly seq: number;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
  /** Messages left for this consumer after this one, as the server counted at delivery. */
  readonly pending: number;
  ack(): void;
  /** Acks and waits for the server to confirm it. */
  ackAck(): Promise<boolean>;
  /** Redeliver (after `delayMs`). */
  nak(delayMs?: number): void;
  /** Resets the ack wait. */
  working(): void;
  /** Never redeliver. */
  term(reason?: string): void;
}

function wrap(m: JsMsg): BusMessage {
  return {
    subject: m.subject,
    data: m.data,
    headers: m.headers,
    seq: m.seq,
    deliveryCount: m.info.deliveryCount,
    pending: m.info.pending,
    ack: () => m.ack(),
    ackAck: () => m.ackAck(),
    nak: (delayMs) => m.nak(delayMs),
    working: () => m.working(),
    term: (reason) => m.term(reason),
  };
}

export interface ConsumeOptions {
  /** Messages the client asks for at a time (buffered locally). Default 100; a work queue wants 1. */
  readonly maxMessages?: number;
  /** Aborting ends the iteration (as `stop()`). */
  readonly signal?: AbortSignal;
}

export interface MessageStream extends AsyncIterable<BusMessage> {
  /**
   * Stops pulling; the iteration ends after the messages already received. Messages received and never
   * acked are redelivered after the ack wait. Safe to call twice.
   */
  stop(): Promise<void>;
}

export async function consumeMessages(
  js: JetStreamClient,
  stream: string,
  durable: string,
  options: ConsumeOptions = {},
): Promise<MessageStream> {
  const consumer = await js.consumers.get(stream, durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: options.maxMessages ?? 100 });
  // `messages.close()` resolves only once the iteration reached the stop, which never happens when the
  // caller stops iterating first; stopping the pull is what is needed, and the iteration then ends.
  const stop = async () => {
    messages.stop();
  };
  options.signal?.addEventListener("abort", () => void stop(), { once: true });
  if (options.signal?.aborted) void stop();
  return {
    stop,
    async *[Symbol.asyncIterator]() {
      for await (const m of messages) {
        yield wrap(m);
      }
    },
  };
}

export interface ConsumerPending {
  /** Not yet delivered. */
  readonly pending: number;
  /** Delivered, not yet acked (in flight, or waiting for redelivery). */
  readonly ackPending: number;
  readonly total: number;
}

export async function consumerPending(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
): Promise<ConsumerPending> {
  const info = await jsm.consumers.info(stream, durable);
  return {
    pending: info.num_pending,
    ackPending: info.num_ack_pending,
    total: info.num_pending + info.num_ack_pending,
  };
}

/** How far past the consumer's ack floor `firstUnacked` looks (messages acked out of order are gone). */
const FIRST_UNACKED_SCAN = 64;

/**
 * The oldest message of `subject` that `durable` has not acked yet (pending or in flight) on a work-queue
 * stream, where acked messages are removed: the first that still exists after the consumer's ack floor.
 * Undefined when nothing is outstanding, or when it is not found within the scan (many acked out of order,
 * or another subject's messages in between): the caller tries again later.
 */
export async function firstUnacked(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  subject: string,
): Promise<{ readonly seq: number; readonly data: Uint8Array } | undefined> {
  const info = await jsm.consumers.info(stream, durable);
  if (info.num_pending + info.num_ack_pending === 0) return undefined;
  const from = info.ack_floor.stream_seq + 1;
  for (let seq = from; seq < from + FIRST_UNACKED_SCAN; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m && m.subject === subject) return { seq, data: m.data };
  }
  return undefined;
}
