/**
 * The mesh's two streams, created or brought up to date at start by whichever service comes first (every
 * service calls `ensureStreams`; create and update are idempotent):
 *
 * - CTAP_BLOBS, `ctap.blobs.>`: work-queue retention (a blob key is removed once a fetcher acked it), file
 *   storage, a duplicate window so N fetchers listing one window enqueue each key once.
 * - CTAP_CHUNKS, `ctap.chunks.>`: work-queue retention (a batch is removed once its stitcher acked it, so
 *   a byte limit bounds the backlog, not the run: the stream holds what is unacked, a killed stitcher's
 *   held batches included, and nothing else), file storage, a duplicate window so a re-published blob is
 *   stored once (the window keeps msg ids of removed batches too), optional max bytes with `discard: new`
 *   (a full stream refuses publishes: StreamFullError). Work-queue retention allows one consumer per
 *   subject, which the mesh has: `stitch-<run>-<shard>` on `ctap.chunks.<run>.<shard>`.
 *
 * A stream made with another retention by an older version (CTAP_CHUNKS had limits retention) cannot be
 * updated to it (JetStream refuses a retention change): it is made again when every consumer of it has
 * nothing pending or unacked (all its data consumed), else `ensureStream` throws
 * StreamRetentionMismatchError naming the stream, and nothing is deleted.
 *
 * `removeRun` removes what a finished replay left: its consumers and any message of its subjects.
 */
import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { StreamRetentionMismatchError } from "./errors.js";
import { blobSubject, checkRun, LIVE_RUN, StreamName } from "./subjects.js";

export interface EnsureStreamsOptions {
  /** Default 10 minutes (docs/mesh.md). */
  readonly duplicateWindowMs?: number;
  /** Cap of CTAP_CHUNKS in bytes; default unlimited. */
  readonly chunksMaxBytes?: number;
  /** Largest message CTAP_CHUNKS accepts; default 8 MiB (batches stay near 512 KiB, rarely above 1 MiB). */
  readonly chunksMaxMsgBytes?: number;
}

export const DEFAULT_DUPLICATE_WINDOW_MS = 10 * 60_000;

function isNotFound(err: unknown): boolean {
  return (
    (err as { name?: string }).name === "StreamNotFoundError" || (err as { code?: number }).code === 10059
  );
}

/** Creates the stream, or updates the settings an update may change when it exists. */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<StreamInfo> {
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(config.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (existing && config.retention !== undefined && existing.config.retention !== config.retention) {
    await dropConsumedStream(jsm, existing, config.retention);
    existing = undefined;
  }
  if (!existing) {
    try {
      return await jsm.streams.add(config);
    } catch (addErr) {
      // Another service created it between our info and add: fall through to the update.
      if ((addErr as { code?: number }).code !== 10058) throw addErr;
    }
  }
  const { name, retention: _retention, storage: _storage, ...update } = config;
  return jsm.streams.update(name, update);
}

/**
 * A stream whose retention must change: deleted when every consumer of it has consumed everything it
 * filters (nothing pending, nothing unacked), so it can be made again; else StreamRetentionMismatchError.
 */
async function dropConsumedStream(
  jsm: JetStreamManager,
  existing: StreamInfo,
  wanted: RetentionPolicy,
): Promise<void> {
  const name = existing.config.name;
  const busy: string[] = [];
  for await (const c of jsm.consumers.list(name)) {
    if (c.num_pending > 0 || c.num_ack_pending > 0)
      busy.push(`${c.name} (${c.num_pending} pending, ${c.num_ack_pending} unacked)`);
  }
  if (busy.length > 0) throw new StreamRetentionMismatchError(name, existing.config.retention, wanted, busy);
  try {
    await jsm.streams.delete(name);
  } catch (err) {
    // Another service dropped it first.
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Removes a finished replay's traces from the streams: its consumers (`fetchers-<run>`, every
 * `stitch-<run>-<shard>`) and any message left on its subjects (a finished replay's stitchers acked all of
 * theirs, which work-queue retention already removed; a failed one's are dropped). Never the live run.
 * Idempotent: every instance that ran a part of the replay calls it once its part ended.
 */
export async function removeRun(
  jsm: JetStreamManager,
  run: string,
): Promise<{ consumersDeleted: number; messagesPurged: number }> {
  checkRun(run);
  if (run === LIVE_RUN) throw new RangeError("removeRun never removes the live run");
  const subjects: Record<string, string> = {
    [StreamName.Chunks]: `ctap.chunks.${run}.`,
    [StreamName.Blobs]: blobSubject(run),
  };
  let consumersDeleted = 0;
  let messagesPurged = 0;
  for (const [stream, subject] of Object.entries(subjects)) {
    const ofRun = (filter: string | undefined) =>
      filter !== undefined && (subject.endsWith(".") ? filter.startsWith(subject) : filter === subject);
    const names: string[] = [];
    try {
      for await (const c of jsm.consumers.list(stream))
        if (ofRun(c.config.filter_subject)) names.push(c.name);
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
    for (const name of names) {
      const deleted = await jsm.consumers.delete(stream, name).catch((err: unknown) => {
        if ((err as { code?: number }).code === 10014) return false;
        throw err;
      });
      if (deleted) consumersDeleted++;
    }
    const purged = await jsm.streams.purge(stream, {
      filter: subject.endsWith(".") ? `${subject}>` : subject,
    });
    messagesPurged += purged.purged;
  }
  return { consumersDeleted, messagesPurged };
}

export async function ensureStreams(
  jsm: JetStreamManager,
  options: EnsureStreamsOptions = {},
): Promise<{ blobs: StreamInfo; chunks: StreamInfo }> {
  const duplicate_window = nanos(options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS);
  const blobs = await ensureStream(jsm, {
    name: StreamName.Blobs,
    subjects: ["ctap.blobs.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window,
  });
  const chunks = await ensureStream(jsm, {
    name: StreamName.Chunks,
    subjects: ["ctap.chunks.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window,
    max_bytes: options.chunksMaxBytes ?? -1,
    max_msg_size: options.chunksMaxMsgBytes ?? 8 * 1024 * 1024,
    discard: DiscardPolicy.New,
  });
  return { blobs, chunks };
}
