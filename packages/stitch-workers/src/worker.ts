/**
 * One stitch worker: the connections of one shard (`connShard(connection id) === shard`) of every blob the
 * coordinator shares, stitched into header-less capture records and sent back round by round (a round is
 * one blob or one key log). Every worker steps through every frame of a blob (headers are checked by all);
 * it verifies and decodes only its own frames, so the CRC and decode work is split too.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createCaptureEncoder, isPcapngEncoder } from "@cloudtap/egress";
import type { BlobSource } from "@cloudtap/fetch";
import {
  createStitcherFromSettings,
  flowTableCountersOf,
  MERGED_TIME_ORDER,
  runStitchJob,
  stitcherCountersOf,
} from "@cloudtap/stitch";
import { createKeyStore } from "@cloudtap/tls";
import type { FromWorker, ShardInit, ToWorker } from "./protocol.js";
import { ShardRouter } from "./shard-router.js";

const port = parentPort;
if (!port) throw new Error("the stitch worker runs in a worker thread");
const init = workerData as ShardInit;
const s = init.settings;

function send(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

function buffersOf(chunks: readonly Uint8Array[]): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const c of chunks) if (c.buffer instanceof ArrayBuffer) set.add(c.buffer);
  return [...set];
}

const encoder = createCaptureEncoder({
  format: s.format,
  fileHeader: false,
  ...(s.resolution ? { resolution: s.resolution } : {}),
  ...(s.snapLength ? { snapLength: s.snapLength } : {}),
});
// One-shot runs keep every key of the window (as `cloudtap stitch` does): no expiry, a generous cap.
const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER, maxBytes: 1024 * 1024 * 1024 });
for (const text of init.keyLogs) keys.addKeyLog(text, 0);
// One time-order window for every worker, driven by the blobs' start times: their rounds merge in order.
const stitcher = createStitcherFromSettings(
  { ...s, timeOrder: s.timeOrder ?? MERGED_TIME_ORDER },
  {
    sink: encoder,
    keys,
    ...(isPcapngEncoder(encoder) ? { embedKeys: (text: string) => encoder.writeTlsKeyLog(text) } : {}),
  },
);

/** Messages for the blob loop, in arrival order (recycled buffers are taken at once). */
const inbox: ToWorker[] = [];
let wake: (() => void) | undefined;
port.on("message", (m: ToWorker) => {
  if (m.t === "recycle") {
    for (const b of m.buffers) encoder.recycle(new Uint8Array(b));
    return;
  }
  inbox.push(m);
  wake?.();
});
async function nextMessage(): Promise<ToWorker> {
  while (inbox.length === 0)
    await new Promise<void>((r) => {
      wake = r;
    });
  wake = undefined;
  return inbox.shift()!;
}

let pending: Uint8Array[] = [];
let packetsSent = 0;
const progress = { records: 0, payloadBytes: 0 };

/** Everything this round produced, the encoder's partly filled chunk included (it belongs to this round). */
function take(): { chunks: Uint8Array[]; packets: number } {
  const chunks = pending.concat(encoder.flush());
  pending = [];
  const packets = encoder.packetsWritten - packetsSent;
  packetsSent = encoder.packetsWritten;
  return { chunks, packets };
}

/** The shared blobs as the stitch job's source; asking for the next one closes the previous round. */
async function* blobs(): AsyncGenerator<BlobSource> {
  let round = -1;
  for (;;) {
    const m = await nextMessage();
    if (round >= 0) {
      const { chunks, packets } = take();
      send(
        { t: "out", round, chunks, packets, nowNs: stitcher.table.now, progress: { ...progress } },
        buffersOf(chunks),
      );
    }
    if (m.t === "end" || m.t === "recycle") return;
    round = m.round;
    // Time moves with every shard's records: timeouts here follow the newest record any shard has seen.
    if (m.nowNs > stitcher.table.now) stitcher.flushOlderThan(m.nowNs);
    const bytes = m.bytes;
    yield {
      key: m.key,
      ...(m.t === "keys" ? { kind: "keys" as const } : {}),
      size: bytes.length,
      read: async function* () {
        yield bytes;
      },
    };
  }
}

const router = new ShardRouter(init.shards);
/** This worker's frames; frames of no connection (unknown types) are counted once, by worker 0. */
const mine = (type: number, body: Uint8Array): boolean => {
  const shard = router.route(type, body);
  return shard === -1 ? init.shard === 0 : shard === init.shard;
};

try {
  const report = await runStitchJob({
    blobs: blobs(),
    stitcher,
    output: encoder,
    sink: {
      write: (chunk) => {
        pending.push(chunk);
      },
    },
    prefetch: 0,
    // Every worker releases frames at the same blob watermark, so the merge of their rounds is in time order.
    watermark: "blob",
    // Resync only: with skip-rest a blob would stop at damage only the frame's owner sees.
    onCorruption: "resync",
    select: mine,
    onKeyLog: (_key, text) => {
      keys.addKeyLog(new TextDecoder().decode(text), 0);
    },
    onProgress: (p) => {
      progress.records = p.records;
      progress.payloadBytes = p.payloadBytes;
    },
  });
  progress.records = report.records;
  progress.payloadBytes = report.payloadBytes;
  const { chunks, packets } = take();
  // Damage to a blob's framing is seen by every worker alike: worker 0 reports it; damage inside one frame
  // only by the worker that took the frame.
  const problems = report.problems.filter((p) => init.shard === 0 || p.withinFrame);
  send(
    {
      t: "done",
      chunks,
      packets,
      progress: { ...progress },
      problems,
      unknownFrames: report.unknownFrames,
      stitcher: stitcherCountersOf(stitcher),
      table: flowTableCountersOf(stitcher),
    },
    buffersOf(chunks),
  );
} catch (err) {
  const e = err instanceof Error ? err : new Error(String(err));
  send({ t: "error", message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
}
