/**
 * The mesh's two streams, created or brought up to date at start by whichever service comes first (every
 * service calls `ensureStreams`; create and update are idempotent):
 *
 * - CTAP_BLOBS, `ctap.blobs.>`: work-queue retention (a blob key is removed once a fetcher acked it), file
 *   storage, a duplicate window so N fetchers listing one window enqueue each key once.
 * - CTAP_CHUNKS, `ctap.chunks.>`: limits retention, file storage, a duplicate window so a re-published blob
 *   is stored once, optional max bytes with `discard: new` (a full stream refuses publishes: StreamFullError).
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
import { StreamName } from "./subjects.js";

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
  try {
    await jsm.streams.info(config.name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
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
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    duplicate_window,
    max_bytes: options.chunksMaxBytes ?? -1,
    max_msg_size: options.chunksMaxMsgBytes ?? 8 * 1024 * 1024,
    discard: DiscardPolicy.New,
  });
  return { blobs, chunks };
}
