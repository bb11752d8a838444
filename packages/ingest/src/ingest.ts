import type { ObjectStore } from "@cloudtap/object-store";
import { isPcapFormatError, PcapErrorCode, readCapture } from "@cloudtap/pcap";
import {
  CloseReason,
  isTapperId,
  MAX_FRAME_BODY_BYTES,
  TAPPER_ID_RULE,
  type TapRecord,
} from "@cloudtap/tap-format";
import { BlobRotator } from "./blob-rotator.js";
import { ConnectionTracker } from "./connection-tracker.js";
import { IngestError, IngestErrorCode } from "./errors.js";
import { KeyLogWriter } from "./key-log-writer.js";
import { type IngestProblem, IngestProblemKind, type IngestSummary } from "./summary.js";

export interface IngestOptions {
  /** The pcap or pcapng bytes. */
  readonly capture: AsyncIterable<Uint8Array> | Uint8Array;
  /** Names the capture in connection ids and errors (e.g. its file name). */
  readonly captureName: string;
  /** NSS key log text (an SSLKEYLOGFILE) to store beside the data. */
  readonly keyLog?: string;
  /** Where data blobs go. */
  readonly dataStore: ObjectStore;
  /** Where key logs go; default `dataStore`. */
  readonly keyStore?: ObjectStore;
  /** Key prefix in both stores; default "". */
  readonly prefix?: string;
  /** Tapper id in blob headers and keys ([A-Za-z0-9._-], 1..255); default "ingest". */
  readonly tapperId?: string;
  /** A blob is closed once its frames reach this size (before compression); default 8 MiB. */
  readonly maxBlobBytes?: number;
  readonly compression?: "none" | "gzip";
  /** Sequence number of the first blob; default 0. */
  readonly firstSequence?: bigint;
  /** Identity attributes (user, tenant, app, ...) put on every connection. */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Largest data record payload; contiguous segments are coalesced up to it. Default 64 KiB. */
  readonly maxChunkBytes?: number;
  /** Out-of-order bytes held per TCP direction before a hole is given up; default 1 MiB. */
  readonly maxBufferedBytesPerDirection?: number;
  /** Connection table cap; at the cap the least recently active connection is closed. Default 100000. */
  readonly maxConnections?: number;
  /** Capture-time idle timeout after which a connection is closed (reason timeout); default 5 minutes. */
  readonly idleTimeoutNs?: bigint;
  /** Largest pcap record / pcapng block accepted; default 16 MiB. */
  readonly maxBlockBytes?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_TAPPER_ID = "ingest";
export const DEFAULT_MAX_BLOB_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_CHUNK_BYTES = 64 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES_PER_DIRECTION = 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 100_000;
export const DEFAULT_IDLE_TIMEOUT_NS = 300_000_000_000n;

function invalid(name: string, message: string): IngestError {
  return new IngestError(IngestErrorCode.InvalidOption, `option ${name}: ${message}`);
}

function positiveInteger(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalid(name, `must be an integer in 1..${max}, got ${value}`);
  }
  return value;
}

/**
 * Ingests one capture: reassembles every TCP connection per direction, turns UDP 5-tuples into datagram
 * flows, and writes the records as CTAP blobs to `dataStore`; stores the key log and any TLS key logs
 * embedded in the capture (pcapng Decryption Secrets Blocks) in `keyStore`.
 *
 * The output depends only on the inputs: the same capture and options give the same keys and bytes, so
 * ingesting again overwrites with identical objects.
 *
 * A capture that cannot be read to its end (truncated, corrupt) still has everything before the bad byte
 * ingested and stored; then an `IngestError` (code `capture-unreadable`) is thrown whose cause is the
 * `PcapFormatError` with the offset, and whose `summary` describes what was stored.
 */
export async function ingestCapture(options: IngestOptions): Promise<IngestSummary> {
  const prefix = options.prefix ?? "";
  const tapperId = options.tapperId ?? DEFAULT_TAPPER_ID;
  if (!isTapperId(tapperId)) throw invalid("tapperId", `"${tapperId}" must be ${TAPPER_ID_RULE}`);
  const maxBlobBytes = positiveInteger("maxBlobBytes", options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES);
  // A data record's fixed fields must fit in the frame beside the payload.
  const maxChunkBytes = positiveInteger(
    "maxChunkBytes",
    options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
    MAX_FRAME_BODY_BYTES - 64,
  );
  const maxBuffered = options.maxBufferedBytesPerDirection ?? DEFAULT_MAX_BUFFERED_BYTES_PER_DIRECTION;
  if (!Number.isSafeInteger(maxBuffered) || maxBuffered < 0) {
    throw invalid("maxBufferedBytesPerDirection", `must be a non-negative integer, got ${maxBuffered}`);
  }
  const maxConnections = positiveInteger("maxConnections", options.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  const idleTimeoutNs = options.idleTimeoutNs ?? DEFAULT_IDLE_TIMEOUT_NS;
  if (idleTimeoutNs <= 0n) throw invalid("idleTimeoutNs", `must be positive, got ${idleTimeoutNs}`);
  const signal = options.signal;

  const blobs = new BlobRotator({
    store: options.dataStore,
    prefix,
    tapperId,
    maxBlobBytes,
    compression: options.compression ?? "none",
    firstSequence: options.firstSequence ?? 0n,
    ...(signal ? { signal } : {}),
  });
  const keys = new KeyLogWriter({
    store: options.keyStore ?? options.dataStore,
    prefix,
    tapperId,
    ...(signal ? { signal } : {}),
  });
  const records: TapRecord[] = [];
  const payloadBytes = { tcp: 0, udp: 0 };
  const tracker = new ConnectionTracker({
    captureName: options.captureName,
    attributes: options.attributes ?? {},
    maxBufferedBytes: maxBuffered,
    maxChunkBytes,
    maxConnections,
    idleTimeoutNs,
    emit: (record) => {
      if (record.type === "data") payloadBytes.tcp += record.payload.length;
      else if (record.type === "datagram") payloadBytes.udp += record.payload.length;
      records.push(record);
    },
  });
  const drain = async (): Promise<void> => {
    // The tracker emits synchronously; records are written here, between packets, in emission order.
    for (let i = 0; i < records.length; i++) await blobs.write(records[i]!);
    records.length = 0;
  };

  let packets = 0;
  let capturedBytes = 0;
  let otherSecretsSkipped = 0;
  let captureError: unknown;

  if (options.keyLog !== undefined && options.keyLog.length > 0)
    await keys.add(options.keyLog, "key-log-option");
  try {
    for await (const item of readCapture(
      options.capture,
      options.maxBlockBytes ? { maxBlockBytes: options.maxBlockBytes } : {},
    )) {
      signal?.throwIfAborted();
      if (item.type === "tls-key-log") {
        await keys.add(item.text, "capture-dsb");
      } else if (item.type === "secrets") {
        otherSecretsSkipped++;
      } else {
        await keys.setTime(item.timestampNs);
        tracker.handlePacket(item, packets);
        packets++;
        capturedBytes += item.capturedLength;
        await drain();
      }
    }
  } catch (err) {
    if (!isPcapFormatError(err)) throw err;
    captureError = err;
  }
  const problems: IngestProblem[] = [];
  if (isPcapFormatError(captureError) && captureError.code === PcapErrorCode.Truncated && packets > 0) {
    // A capture tool killed mid-write leaves a cut last record: what came before it is sound, so it is
    // ingested as usual and the cut is reported (other damage is an error, below).
    problems.push({
      where: options.captureName,
      kind: IngestProblemKind.CaptureTruncated,
      message: `the capture ends inside a record after ${packets} packets (${captureError.message}): the rest is lost`,
    });
    captureError = undefined;
  }
  tracker.finishAll(CloseReason.TapperStop);
  await drain();
  await blobs.close();
  await keys.close();

  const summary: IngestSummary = {
    captureName: options.captureName,
    packets,
    capturedBytes,
    connections: {
      tcp: tracker.tcpConnections,
      udp: tracker.udpConnections,
      midstream: tracker.midstreamConnections,
      evicted: tracker.evicted,
      idleTimeouts: tracker.idleTimeouts,
    },
    payloadBytes,
    skipped: { ...tracker.skipped },
    tcp: { ...tracker.tcp },
    blobs: blobs.blobs,
    keyLogs: keys.written,
    otherSecretsSkipped,
    problems: [...keys.problems, ...problems],
  };
  if (captureError !== undefined) {
    const message = captureError instanceof Error ? captureError.message : String(captureError);
    throw new IngestError(
      IngestErrorCode.CaptureUnreadable,
      `capture "${options.captureName}" is unreadable after ${packets} packets: ${message}`,
      { cause: captureError, summary },
    );
  }
  return summary;
}
