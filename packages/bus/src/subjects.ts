/**
 * Names of the mesh's streams, subjects, consumers and buckets (docs/mesh.md). A run is `live` for continuous
 * mode or a replay's id; it is one subject token, so it is checked here once for every caller.
 */
import { InvalidBusNameError } from "./errors.js";

export const StreamName = { Blobs: "CTAP_BLOBS", Chunks: "CTAP_CHUNKS" } as const;
export const BucketName = {
  Cursors: "ctap_cursors",
  BlobState: "ctap_blob_state",
  Keys: "ctap_keys",
  Replays: "ctap_replays",
} as const;
export const LIVE_RUN = "live";

// A subject token and consumer name: no dots, wildcards or spaces.
const TOKEN_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function checkRun(run: string): string {
  if (!TOKEN_RE.test(run)) throw new InvalidBusNameError("run id (want 1..64 of [A-Za-z0-9_-])", run);
  return run;
}

export function blobSubject(run: string): string {
  return `ctap.blobs.${checkRun(run)}`;
}

export function chunkSubject(run: string, shard: number): string {
  if (!Number.isInteger(shard) || shard < 0) throw new InvalidBusNameError("shard", String(shard));
  return `ctap.chunks.${checkRun(run)}.${shard}`;
}

/** The durable work-queue consumer the fetchers of one run share. */
export function fetcherConsumer(run: string): string {
  return `fetchers-${checkRun(run)}`;
}

/** The durable consumer of one shard's chunks. */
export function stitcherConsumer(run: string, shard: number): string {
  return `stitch-${checkRun(run)}-${shard}`;
}
