/**
 * The fetch stage of the mesh (docs/mesh.md): list the data store, enqueue blob keys, work the queue, publish
 * each blob's records as per-shard chunk batches.
 *
 * Lister: one-shot lists the window (since/until) once; continuous lists every `pollMs` from the cursor in
 * KV `ctap_cursors` (`fetcher.<run>`), re-listing `latenessNs` before it for blobs that landed late. Each key
 * not yet in `ctap_blob_state` is published on `ctap.blobs.<run>` with msg id `<run>:<key>`, so N fetchers
 * listing the same window enqueue it once.
 *
 * Worker: takes one key at a time from the shared durable `fetchers-<run>` (a work queue: N fetcher
 * processes split the blobs, never two at once on one), reads the blob, cuts it into batches, publishes
 * them on `ctap.chunks.<run>.<shard>` with msg ids `<key>#<shard>#<index>`, sending `working()` meanwhile.
 * Only after JetStream acknowledged every batch does it write `done` to `ctap_blob_state` and ack the key
 * (the first link of the ack chain). A blob that vanished, is too large or cannot be decoded is quarantined
 * (KV state with the reason, a counter, a log line) and acked: the pipeline goes on. A damaged blob publishes
 * its good records and counts its problems. A full CTAP_CHUNKS stream makes the worker wait and retry, never
 * drop; a publish that fails otherwise naks the key for a later redelivery.
 *
 * End of a one-shot window: once this fetcher's listing is complete and the consumer has nothing pending or in
 * flight, the stage publishes the end-of-window marker (header `Ctap-Eof: 1`, empty body, msg id
 * `eof#<run>#<shard>`) on every shard subject and its state becomes `done`. Every fetcher lists the whole
 * window before checking, so none can see an empty queue before all keys are in it.
 */
import {
  BucketName,
  type Bus,
  type BusMessage,
  backoffDelayMs,
  blobSubject,
  chunkSubject,
  consumeMessages,
  consumerPending,
  type EnsureStreamsOptions,
  ensureConsumer,
  ensureKv,
  ensureStreams,
  fetcherConsumer,
  firstUnacked,
  getJson,
  isStreamFull,
  type KV,
  MeshHeader,
  makeHeaders,
  publishWithId,
  putJson,
  StreamName,
  sleep,
} from "@cloudtap/bus";
import { batchMsgId, listBlobs, type ShardBatch, shardBatches, sortBlobsByTime } from "@cloudtap/fetch";
import { isObjectNotFound, type ObjectStore } from "@cloudtap/object-store";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";
import { parseBlobKey } from "@cloudtap/tap-format";
import {
  Attr,
  extractHeaders,
  injectHeaders,
  linkTo,
  markError,
  recordError,
  type Span,
  SpanKind,
  SpanName,
  spanContextOf,
  withSpan,
} from "@cloudtap/telemetry";
import { MeshStage, PUBLISHED_MS_HEADER, StageLatency } from "./stage-latency.js";

export type FetchMode =
  | { readonly kind: "once"; readonly sinceNs?: bigint; readonly untilNs?: bigint }
  | {
      readonly kind: "continuous";
      readonly pollMs: number;
      /** Re-list this far before the cursor, for blobs that land late. */
      readonly latenessNs: bigint;
      /** Where to start when there is no cursor yet; default: everything in the store. */
      readonly sinceNs?: bigint;
    };

export interface FetchStageOptions {
  readonly bus: Pick<Bus, "js" | "jsm">;
  readonly store: ObjectStore;
  /** The store prefix above `data/`. */
  readonly prefix?: string;
  /** `live`, or a replay's id. */
  readonly run: string;
  readonly shardCount: number;
  readonly mode: FetchMode;
  readonly counters: CounterRegistry;
  readonly logger: Logger;
  /** Aborting stops listing and consuming; a blob in progress is nak'ed for another fetcher. */
  readonly signal: AbortSignal;
  readonly streams?: EnsureStreamsOptions;
  /** Ack wait of the work queue. Default 60 s; `working()` is sent every third of it. */
  readonly ackWaitMs?: number;
  /** Batch publishes in flight per blob. Default 16. */
  readonly publishConcurrency?: number;
  /** Blobs larger than this are quarantined ("too-large"). Default 1 GiB. */
  readonly maxBlobBytes?: number;
  readonly batchTargetBytes?: number;
  readonly batchMaxBytes?: number;
  /**
   * How often a one-shot run checks whether the queue is drained (one JetStream API request). Default
   * 200 ms: the end-of-window markers wait for it, so it is part of every one-shot run's length.
   */
  readonly drainCheckMs?: number;
  /** One-shot: publish watermarks to the shards while the window is worked (default true; see publishWatermark). */
  readonly watermarks?: boolean;
  /** Only blobs of these tappers (a replay's filter); default all. */
  readonly tapperIds?: readonly string[];
}

export const FetchStageState = {
  Starting: "starting",
  Running: "running",
  Done: "done",
  Stopped: "stopped",
  Failed: "failed",
} as const;
export type FetchStageState = (typeof FetchStageState)[keyof typeof FetchStageState];

export const QuarantineReason = {
  Vanished: "vanished",
  TooLarge: "too-large",
} as const;

/** The value of a `ctap_blob_state` entry (docs/mesh.md). */
export interface BlobStateEntry {
  readonly state: "done" | "quarantined";
  readonly reason?: string;
  readonly batches: number;
  readonly records: number;
  /** Problems found in a damaged blob whose good records were published. */
  readonly problems?: number;
}

export interface FetchStage {
  readonly state: FetchStageState;
  /** Runs until a one-shot window is done, or until the signal aborts; rejects when the stage fails. */
  run(): Promise<void>;
}

export const DEFAULT_FETCH_ACK_WAIT_MS = 60_000;
export const DEFAULT_MAX_BLOB_BYTES = 1024 ** 3;
export const DEFAULT_DRAIN_CHECK_MS = 200;

/** The `ctap_blob_state` key of a blob: `<run>.<base64url(key)>`, KV keys allow neither `/` nor spaces. */
export function blobStateKey(run: string, blobKey: string): string {
  return `${run}.${Buffer.from(blobKey, "utf8").toString("base64url")}`;
}

export function cursorKey(run: string): string {
  return `fetcher.${run}`;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function createFetchStage(options: FetchStageOptions): FetchStage {
  const { bus, store, run, shardCount, counters, signal } = options;
  const log = options.logger.child({ run });
  const ackWaitMs = options.ackWaitMs ?? DEFAULT_FETCH_ACK_WAIT_MS;
  const concurrency = options.publishConcurrency ?? 16;
  const maxBlobBytes = options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
  const durable = fetcherConsumer(run);
  const queueSubject = blobSubject(run);
  const tappers = options.tapperIds?.length ? new Set(options.tapperIds) : undefined;
  let state: FetchStageState = FetchStageState.Starting;
  let blobState: KV;
  let cursors: KV;

  const c = {
    listed: counters.counter("blobs_listed"),
    enqueued: counters.counter("blobs_enqueued"),
    skippedDone: counters.counter("blobs_skipped_done"),
    done: counters.counter("blobs_done"),
    damaged: counters.counter("blobs_damaged"),
    batches: counters.counter("batches_published"),
    duplicateBatches: counters.counter("batches_duplicate"),
    records: counters.counter("records_published"),
    bytes: counters.counter("bytes_published"),
    streamFullWaits: counters.counter("stream_full_waits"),
    retried: counters.counter("blobs_retried"),
    lagMs: counters.gauge("blob_lag_ms"),
    queue: counters.gauge("queue_pending"),
  };
  const pickupLatency = new StageLatency(counters, MeshStage.FetchPickup);
  const publishLatency = new StageLatency(counters, MeshStage.FetchPublish);

  /**
   * Continuous: keys of the re-listed window already found done or quarantined (a final state), with their
   * start time, so that each poll does not ask the KV again for every blob of the lateness window (one
   * request per key, in turn, before the new keys at the end of the listing). Forgotten once below the
   * window.
   */
  const settled = new Map<string, bigint>();

  async function enqueue(key: string): Promise<void> {
    c.listed.add();
    if (settled.has(key)) {
      c.skippedDone.add();
      return;
    }
    if (await getJson<BlobStateEntry>(blobState, blobStateKey(run, key))) {
      c.skippedDone.add();
      if (options.mode.kind === "continuous") settled.set(key, parseBlobKey(key)?.startNs ?? 0n);
      return;
    }
    // The listing's trace context: each blob's own trace links back to the listing that found it.
    const headers = makeHeaders({});
    injectHeaders(headers);
    const r = await publishWithId(bus.js, queueSubject, utf8.encode(key), {
      msgId: `${run}:${key}`,
      headers,
      signal,
    });
    if (!r.duplicate) c.enqueued.add();
  }

  function listOnce(sinceNs: bigint | undefined, untilNs: bigint | undefined, lookbackNs?: bigint) {
    return withSpan(
      SpanName.BlobList,
      { root: true, attributes: { [Attr.Run]: run, [Attr.ListMode]: options.mode.kind } },
      async (span) => {
        const listedBefore = c.listed.value;
        const last = await listWindow(sinceNs, untilNs, lookbackNs);
        span.setAttribute(Attr.BlobsListed, c.listed.value - listedBefore);
        return last;
      },
    );
  }

  async function listWindow(sinceNs: bigint | undefined, untilNs: bigint | undefined, lookbackNs?: bigint) {
    let last: string | undefined;
    const window = {
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
      ...(sinceNs === undefined ? {} : { sinceNs }),
      ...(untilNs === undefined ? {} : { untilNs }),
      ...(lookbackNs === undefined ? {} : { lookbackNs }),
      signal,
    };
    // One-shot: the whole window, enqueued in start-time order, so that the work queue's oldest blob not yet
    // done bounds every record still to come (the watermarks). Continuous: as listed.
    const once = options.mode.kind === "once";
    const listed = [];
    for await (const blob of listBlobs(store, window)) {
      if (tappers && !tappers.has(parseBlobKey(blob.key)?.tapperId ?? "")) continue;
      if (once) listed.push(blob);
      else await enqueue(blob.key);
      if (last === undefined || blob.key > last) last = blob.key;
    }
    for (const blob of sortBlobsByTime(listed)) await enqueue(blob.key);
    return last;
  }

  /**
   * One-shot: tells every shard how far the window is published (`Ctap-Watermark`, an empty message after
   * the batches it covers): the start of the oldest blob in the work queue not yet done. Blobs are enqueued
   * in start-time order and a blob's key is acked only after all its batches are in JetStream, so every blob
   * that starts earlier has its batches on the shard's subject before the marker. The stitchers then release
   * their time order as a one-process stitch does at a blob's start, instead of holding everything until
   * the end of the window (a window shorter than the lateness bound was held whole). Several fetchers
   * publish the same marker once (msg id); a stitcher keeps the highest it has seen.
   */
  let watermarkNs = -1n;
  async function publishWatermark(): Promise<void> {
    const first = await firstUnacked(bus.jsm, StreamName.Blobs, durable, queueSubject);
    if (!first) return;
    const startNs = parseBlobKey(fromUtf8.decode(first.data))?.startNs;
    if (startNs === undefined || startNs <= watermarkNs) return;
    watermarkNs = startNs;
    for (let shard = 0; shard < shardCount; shard++) {
      await publishWithId(bus.js, chunkSubject(run, shard), new Uint8Array(0), {
        msgId: `wm#${run}#${shard}#${startNs}`,
        headers: makeHeaders({ [MeshHeader.Watermark]: String(startNs) }),
        signal,
      });
    }
    counters.counter("watermarks_published").add(shardCount);
  }

  async function listContinuously(mode: Extract<FetchMode, { kind: "continuous" }>): Promise<void> {
    while (!signal.aborted) {
      // A listing every pollMs from the start of the last one: a slow listing does not add to the wait.
      const started = Date.now();
      const cursor = await getJson<string>(cursors, cursorKey(run));
      const cursorNs = cursor === undefined ? undefined : parseBlobKey(cursor)?.startNs;
      const sinceNs = cursorNs === undefined ? mode.sinceNs : cursorNs - mode.latenessNs;
      if (sinceNs !== undefined)
        for (const [key, startNs] of settled) if (startNs < sinceNs) settled.delete(key);
      const last = await listOnce(sinceNs, undefined, 0n);
      if (last !== undefined && (cursor === undefined || last > cursor)) {
        await putJson(cursors, cursorKey(run), last);
      }
      await sleep(Math.max(0, mode.pollMs - (Date.now() - started)), signal).catch(() => {});
    }
  }

  async function quarantine(
    msg: BusMessage,
    key: string,
    reason: string,
    detail: string,
    span?: Span,
  ): Promise<void> {
    counters.counter("blobs_quarantined", { reason }).add();
    if (span) {
      span.setAttribute(Attr.Reason, reason);
      markError(span, reason, `quarantined: ${detail}`);
    }
    log.warn("blob quarantined", { blob: key, reason, detail });
    const entry: BlobStateEntry = {
      state: "quarantined",
      reason: `${reason}: ${detail}`,
      batches: 0,
      records: 0,
    };
    await putJson(blobState, blobStateKey(run, key), entry);
    await msg.ackAck();
  }

  /** Publishes one batch; waits (and counts) while the stream is full. */
  async function publishBatch(key: string, batch: ShardBatch): Promise<void> {
    const headers = makeHeaders({
      [MeshHeader.Blob]: key,
      [MeshHeader.Batch]: String(batch.index),
      [PUBLISHED_MS_HEADER]: String(Date.now()),
    });
    // The publish span's context: the stitcher's consume span of this batch is its child.
    injectHeaders(headers);
    for (let wait = 0; ; wait++) {
      try {
        const r = await publishWithId(bus.js, chunkSubject(run, batch.shard), batch.bytes, {
          // The run in the id: a replay re-publishes the live run's batches within the duplicate window.
          msgId: `${run}:${batchMsgId(key, batch.shard, batch.index)}`,
          headers,
          signal,
        });
        if (r.duplicate) c.duplicateBatches.add();
        else {
          c.batches.add();
          c.records.add(batch.records);
          c.bytes.add(batch.bytes.length);
        }
        return;
      } catch (err) {
        if (!isStreamFull(err)) throw err;
        c.streamFullWaits.add();
        if (wait % 10 === 0) log.warn("chunk stream full: waiting", { blob: key, error: err });
        await sleep(backoffDelayMs(wait, { initialMs: 250, maxMs: 10_000 }), signal);
      }
    }
  }

  async function publishAll(key: string, batches: readonly ShardBatch[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < batches.length) await publishBatch(key, batches[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
  }

  /** One trace per blob: its root span links to the listing that enqueued it. */
  function processBlob(msg: BusMessage): Promise<void> {
    const key = fromUtf8.decode(msg.data);
    const listing = spanContextOf(extractHeaders(msg.headers));
    return withSpan(
      SpanName.Blob,
      {
        root: true,
        kind: SpanKind.CONSUMER,
        attributes: { [Attr.BlobKey]: key, [Attr.Run]: run },
        ...(listing ? { links: [linkTo(listing)] } : {}),
      },
      (span) => processBlobIn(msg, key, span),
    );
  }

  async function processBlobIn(msg: BusMessage, key: string, span: Span): Promise<void> {
    const pickedAt = Date.now();
    const blobLog = log.child({ blob: key });
    if (await getJson<BlobStateEntry>(blobState, blobStateKey(run, key))) {
      // Done by a fetcher that died before its ack, or enqueued again after the duplicate window.
      c.skippedDone.add();
      await msg.ackAck();
      return;
    }
    const heartbeat = setInterval(() => msg.working(), Math.max(1000, Math.floor(ackWaitMs / 3)));
    try {
      const fetched = await withSpan(
        SpanName.BlobFetch,
        { attributes: { [Attr.BlobKey]: key } },
        async (s) => {
          const info = await store.stat(key);
          if (!info) return { quarantine: [QuarantineReason.Vanished, "no longer in the store"] as const };
          s.setAttribute(Attr.BlobBytes, info.size);
          if (info.size > maxBlobBytes) {
            return {
              quarantine: [QuarantineReason.TooLarge, `${info.size} bytes > ${maxBlobBytes}`] as const,
            };
          }
          try {
            return { bytes: await store.readBytes(key, { signal }), landedMs: info.lastModifiedMs };
          } catch (err) {
            if (isObjectNotFound(err))
              return { quarantine: [QuarantineReason.Vanished, "deleted while read"] as const };
            throw err;
          }
        },
      );
      if (!("bytes" in fetched)) {
        const [reason, detail] = fetched.quarantine;
        return await quarantine(msg, key, reason, detail, span);
      }
      const bytes = fetched.bytes;
      const cut = await withSpan(SpanName.BlobDecode, { attributes: { [Attr.BlobKey]: key } }, async (s) => {
        const result = await shardBatches(key, bytes, {
          shardCount,
          ...(options.batchTargetBytes === undefined ? {} : { targetBytes: options.batchTargetBytes }),
          ...(options.batchMaxBytes === undefined ? {} : { maxBytes: options.batchMaxBytes }),
        });
        s.setAttributes({
          [Attr.BlobRecords]: result.records,
          [Attr.BlobBatches]: result.batches.length,
          [Attr.BlobProblems]: result.problems.length,
        });
        return result;
      });
      if (cut.undecodable)
        return await quarantine(msg, key, cut.undecodable.kind, cut.undecodable.message, span);
      if (cut.problems.length > 0) {
        c.damaged.add();
        for (const p of cut.problems) counters.counter("blob_problems", { kind: p.kind }).add();
        blobLog.warn("damaged blob: publishing its good records", { problems: cut.problems });
      }
      await withSpan(
        SpanName.BlobPublish,
        {
          kind: SpanKind.PRODUCER,
          attributes: { [Attr.BlobKey]: key, [Attr.BlobBatches]: cut.batches.length },
        },
        () => publishAll(key, cut.batches),
      );
      span.setAttributes({ [Attr.BlobRecords]: cut.records, [Attr.BlobBatches]: cut.batches.length });
      const entry: BlobStateEntry = {
        state: "done",
        batches: cut.batches.length,
        records: cut.records,
        ...(cut.problems.length > 0 ? { problems: cut.problems.length } : {}),
      };
      if (msg.deliveryCount === 1) {
        // A redelivered blob's wait is the ack wait of a failed attempt, not the path's.
        pickupLatency.observe(pickedAt - (fetched.landedMs ?? pickedAt), cut.records);
        publishLatency.observe(Date.now() - pickedAt, cut.records);
      }
      await putJson(blobState, blobStateKey(run, key), entry);
      await msg.ackAck();
      c.done.add();
      if (cut.header) c.lagMs.set(Math.max(0, Date.now() - Number(cut.header.startNs / 1_000_000n)));
      blobLog.debug("blob done", { batches: entry.batches, records: entry.records });
    } catch (err) {
      // Not acked: redelivered to this or another fetcher. On shutdown, at once.
      msg.nak(signal.aborted ? 0 : 5000);
      if (signal.aborted) return;
      c.retried.add();
      recordError(span, err);
      blobLog.error("blob failed: will be retried", { error: err });
    } finally {
      clearInterval(heartbeat);
    }
  }

  async function publishEndOfWindow(): Promise<void> {
    for (let shard = 0; shard < shardCount; shard++) {
      await publishWithId(bus.js, chunkSubject(run, shard), new Uint8Array(0), {
        msgId: `eof#${run}#${shard}`,
        headers: makeHeaders({ [MeshHeader.Eof]: "1" }),
        signal,
      });
    }
    counters.counter("eof_markers_published").add(shardCount);
  }

  async function run_(): Promise<void> {
    await ensureStreams(bus.jsm, options.streams ?? {});
    blobState = await ensureKv(bus.js, BucketName.BlobState);
    cursors = await ensureKv(bus.js, BucketName.Cursors);
    await ensureConsumer(bus.jsm, StreamName.Blobs, durable, {
      filterSubject: queueSubject,
      ackWaitMs,
      maxAckPending: 10_000,
    });
    state = FetchStageState.Running;
    log.info("fetch stage running", { mode: options.mode.kind, shards: shardCount, store: store.url });

    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const messages = await consumeMessages(bus.js, StreamName.Blobs, durable, {
      maxMessages: 1,
      signal: stop.signal,
    });
    let listingDone = false;
    const mode = options.mode;
    const lister = (async () => {
      if (mode.kind === "once") await listOnce(mode.sinceNs, mode.untilNs);
      else await listContinuously(mode);
      listingDone = true;
      log.info("listing complete", { listed: c.listed.value, enqueued: c.enqueued.value });
    })();
    lister.catch((err) => {
      if (!signal.aborted) stop.abort(err);
    });

    let drained = false;
    // Continuous: the work queue's backlog (cloudtap status), every 2 s.
    const backlogTimer =
      mode.kind === "once"
        ? undefined
        : setInterval(() => {
            consumerPending(bus.jsm, StreamName.Blobs, durable).then(
              (p) => c.queue.set(p.total),
              () => {},
            );
          }, 2000);
    backlogTimer?.unref?.();
    const drainWatch = (async () => {
      if (mode.kind !== "once") return;
      while (!stop.signal.aborted) {
        await sleep(options.drainCheckMs ?? DEFAULT_DRAIN_CHECK_MS, stop.signal).catch(() => {});
        if (stop.signal.aborted || !listingDone) continue;
        const p = await consumerPending(bus.jsm, StreamName.Blobs, durable);
        c.queue.set(p.total);
        if (p.total === 0) {
          drained = true;
          stop.abort(new Error("window drained"));
        } else if (options.watermarks !== false) {
          await publishWatermark().catch((err: unknown) =>
            log.warn("watermark not published", { error: err instanceof Error ? err.message : String(err) }),
          );
        }
      }
    })();

    try {
      for await (const msg of messages) {
        if (stop.signal.aborted) {
          msg.nak(0);
          break;
        }
        await processBlob(msg);
      }
    } finally {
      if (backlogTimer) clearInterval(backlogTimer);
      await messages.stop();
      signal.removeEventListener("abort", onAbort);
      await drainWatch.catch(() => {});
    }
    if (drained) {
      await publishEndOfWindow();
      state = FetchStageState.Done;
      log.info("window done: end-of-window markers published", {
        shards: shardCount,
        blobsDone: c.done.value,
        counters: counters.snapshot(),
      });
      return;
    }
    if (signal.aborted) {
      state = FetchStageState.Stopped;
      return;
    }
    // The lister failed (the only other way the stop signal fires).
    await lister;
  }

  return {
    get state() {
      return state;
    },
    async run() {
      try {
        await run_();
      } catch (err) {
        if (signal.aborted) {
          state = FetchStageState.Stopped;
          return;
        }
        state = FetchStageState.Failed;
        throw err;
      }
    },
  };
}
