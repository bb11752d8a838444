/**
 * One stored blob cut into per-shard chunk batches (docs/mesh.md, "A chunk batch"): each batch is a CTAP v1
 * blob of its own, with the source's tapper id, sequence and start time in its header, that shard's records
 * in their order in the source, and a blob-end frame carrying the source's end time. The stitcher reads a
 * batch with the same `readCtap` as a stored blob, checksums included.
 *
 * - Shard of a record: `connShard` of its connection id, so every record of a connection (both directions)
 *   goes to one shard, whichever fetcher cut the blob.
 * - Cutting: a batch is closed once its frames reach `targetBytes`, and before a record that would take it
 *   past `maxBytes`; a record larger than `maxBytes` travels in a batch of its own.
 * - Damage: the source is read in resync mode, so a damaged blob still yields its good records; every
 *   corruption the reader reports, and an error it throws part way, is listed in `problems`. A blob whose
 *   header cannot be read gives no batches and `undecodable` (the fetcher quarantines it with that reason).
 * - Batches are built whole before any is returned, because each one's blob-end frame carries the source's end
 *   time, known only at the source's end. They hold their own bytes: the input may be reused afterwards.
 */
import {
  type BlobHeader,
  type CtapWriter,
  connShard,
  createCtapWriter,
  isCtapError,
  MemorySink,
  readCtap,
  type TapRecord,
  writeConnId,
} from "@cloudtap/tap-format";
import type { BlobProblem } from "./blob-source.js";

export interface ShardBatchOptions {
  /** Shards (stitcher partitions); at least 1. */
  readonly shardCount: number;
  /** Close a batch once its frames reach this size. Default 512 KiB. */
  readonly targetBytes?: number;
  /** Never let a batch grow past this by adding a record to it. Default 1 MiB. */
  readonly maxBytes?: number;
}

export const DEFAULT_BATCH_TARGET_BYTES = 512 * 1024;
export const DEFAULT_BATCH_MAX_BYTES = 1024 * 1024;

export interface ShardBatch {
  readonly shard: number;
  /** Index of this batch among the blob's batches of the same shard (0, 1, ...): part of its message id. */
  readonly index: number;
  /** A complete CTAP v1 blob. */
  readonly bytes: Uint8Array;
  readonly records: number;
  readonly payloadBytes: number;
}

export interface ShardBatches {
  /** The source's header; absent when it could not be read. */
  readonly header?: BlobHeader;
  /** In shard order, then index order. */
  readonly batches: readonly ShardBatch[];
  readonly records: number;
  readonly payloadBytes: number;
  /** Everything the reader found wrong with the blob, in the order found. */
  readonly problems: readonly BlobProblem[];
  /** Set when nothing of the blob could be decoded (bad magic, version, header): quarantine it. */
  readonly undecodable?: BlobProblem;
}

/** Message id of a batch (docs/mesh.md): `<blob key>#<shard>#<batch index>`. */
export function batchMsgId(blobKey: string, shard: number, index: number): string {
  return `${blobKey}#${shard}#${index}`;
}

const utf8 = new TextEncoder();
// Frame sizes by record type, as docs/tap-format.md lays them out: a 16-byte frame header, then the body.
const FRAME_HEADER_BYTES = 16;
const DATA_HEAD_BYTES = 40;
const CONN_CLOSE_BODY_BYTES = 48;
const CONN_OPEN_FIXED_BYTES = 82; // 80 fixed bytes and the u16 attribute count

/** The frame size the writer will produce for `record`, to decide a cut before writing it. */
function frameSize(record: TapRecord): number {
  switch (record.type) {
    case "data":
    case "datagram":
      return FRAME_HEADER_BYTES + DATA_HEAD_BYTES + record.payload.length;
    case "conn-close":
      return FRAME_HEADER_BYTES + CONN_CLOSE_BODY_BYTES;
    case "conn-open": {
      let n = FRAME_HEADER_BYTES + CONN_OPEN_FIXED_BYTES;
      for (const [k, v] of Object.entries(record.attributes))
        n += 3 + utf8.encode(k).length + utf8.encode(v).length;
      return n;
    }
  }
}

interface OpenBatch {
  readonly sink: MemorySink;
  readonly writer: CtapWriter;
  records: number;
  frameBytes: number;
}

function problemOf(blobKey: string, err: unknown, withinFrame?: boolean): BlobProblem {
  const kind = isCtapError(err) ? err.code : "read-failed";
  const message = err instanceof Error ? err.message : String(err);
  return withinFrame === undefined
    ? { blob: blobKey, kind, message }
    : { blob: blobKey, kind, message, withinFrame };
}

export async function shardBatches(
  blobKey: string,
  bytes: Uint8Array,
  options: ShardBatchOptions,
): Promise<ShardBatches> {
  const shardCount = options.shardCount;
  if (!Number.isInteger(shardCount) || shardCount < 1)
    throw new RangeError(`shardCount ${shardCount} must be >= 1`);
  const targetBytes = options.targetBytes ?? DEFAULT_BATCH_TARGET_BYTES;
  const maxBytes = Math.max(options.maxBytes ?? DEFAULT_BATCH_MAX_BYTES, targetBytes);

  const problems: BlobProblem[] = [];
  const open: (OpenBatch | undefined)[] = new Array(shardCount).fill(undefined);
  const closed: { shard: number; batch: OpenBatch }[] = [];
  const id = new Uint8Array(16);
  let header: BlobHeader | undefined;
  let endNs: bigint | undefined;
  let lastNs = 0n;
  let records = 0;
  let payloadBytes = 0;

  const startBatch = (h: BlobHeader): OpenBatch => {
    const sink = new MemorySink();
    const writer = createCtapWriter(sink, { tapperId: h.tapperId, sequence: h.sequence, startNs: h.startNs });
    return { sink, writer, records: 0, frameBytes: 0 };
  };

  try {
    for await (const item of readCtap([bytes], { onCorruption: "resync" })) {
      switch (item.type) {
        case "header":
          header = item.header;
          lastNs = item.header.startNs;
          continue;
        case "corruption":
          problems.push(problemOf(blobKey, item.error, item.withinFrame));
          continue;
        case "blob-end":
          endNs = item.endNs;
          continue;
      }
      if (!header) continue; // the reader yields the header first; this satisfies the compiler
      writeConnId(item.connId, id, 0);
      const shard = connShard(id, shardCount);
      const size = frameSize(item);
      let batch = open[shard];
      if (batch && batch.records > 0 && batch.frameBytes + size > maxBytes) {
        closed.push({ shard, batch });
        batch = undefined;
      }
      batch ??= startBatch(header);
      open[shard] = batch;
      await batch.writer.write(item);
      batch.records++;
      batch.frameBytes += size;
      records++;
      if (item.type === "data" || item.type === "datagram") payloadBytes += item.payload.length;
      if (item.timestampNs > lastNs) lastNs = item.timestampNs;
      if (batch.frameBytes >= targetBytes) {
        closed.push({ shard, batch });
        open[shard] = undefined;
      }
    }
  } catch (err) {
    const problem = problemOf(blobKey, err);
    if (!header)
      return { batches: [], records: 0, payloadBytes: 0, problems: [problem], undecodable: problem };
    problems.push(problem);
  }
  if (!header) {
    const problem: BlobProblem = { blob: blobKey, kind: "empty", message: "blob has no header" };
    return { batches: [], records: 0, payloadBytes: 0, problems: [problem], undecodable: problem };
  }

  for (let shard = 0; shard < shardCount; shard++) {
    const batch = open[shard];
    if (batch) closed.push({ shard, batch });
  }
  // A blob without its blob-end frame (truncated) ends at its last record's time.
  const end = endNs ?? lastNs;
  const nextIndex = new Array<number>(shardCount).fill(0);
  const batches: ShardBatch[] = [];
  for (const { shard, batch } of closed.sort((a, b) => a.shard - b.shard)) {
    await batch.writer.finish(end);
    batches.push({
      shard,
      index: nextIndex[shard]!++,
      bytes: batch.sink.bytes(),
      records: batch.records,
      payloadBytes: batch.writer.payloadBytes,
    });
  }
  return { header, batches, records, payloadBytes, problems };
}
