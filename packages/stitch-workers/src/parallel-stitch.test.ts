/**
 * The stitch over worker threads against the one-thread stitch of the same store: the same packets (every
 * frame, byte for byte, with its timestamp), the same secrets blocks, the same counters; strict time order in
 * both files; a damaged blob reported once. tshark reads the merged file without a complaint.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCaptureFileOutput } from "@cloudtap/egress/node";
import { type BlobSource, listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { type CaptureItem, createPcapngEncoder, readCapture } from "@cloudtap/pcap";
import { MERGED_TIME_ORDER, runStitchJob, Stitcher } from "@cloudtap/stitch";
import {
  createCtapWriter,
  Direction,
  dataBlobKey,
  keysPrefix,
  MemorySink,
  Transport,
} from "@cloudtap/tap-format";
import { runSimulation } from "@cloudtap/tapsim";
import { tshark } from "@cloudtap/test-harness";
import { createKeyStore } from "@cloudtap/tls";
import { runParallelStitch } from "./coordinator.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-workers-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function keyTexts(storeDir: string): Promise<string[]> {
  const store = openStore(storeDir);
  const out: string[] = [];
  for await (const o of store.list(keysPrefix("")))
    out.push(new TextDecoder().decode(await store.readBytes(o.key)));
  return out;
}

async function blobsOf(storeDir: string): Promise<BlobSource[]> {
  const listed = [];
  for await (const b of listBlobs(openStore(storeDir))) listed.push(b);
  return sortBlobsByTime(listed);
}

async function oneThread(storeDir: string, out: string, texts: string[]) {
  const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
  for (const t of texts) keys.addKeyLog(t, 0);
  const output = createCaptureFileOutput({ path: out, format: "pcapng", embedKeys: true });
  const stitcher = new Stitcher({
    sink: output,
    tls: { keys, variant: "both", embedKeys: (t) => output.embedKeys(t) },
    timeOrder: MERGED_TIME_ORDER,
  });
  const blobs = await blobsOf(storeDir);
  const report = await runStitchJob({
    blobs: (async function* () {
      yield* blobs;
    })(),
    stitcher,
    output,
    sink: output,
    // As the workers do: the blobs' start times alone drive the time order, so the stamps match.
    watermark: "blob",
  });
  await output.close();
  return { report, stats: stitcher.stats, table: stitcher.table.stats };
}

async function workers(storeDir: string, out: string, texts: string[], n: number, depth?: number) {
  const output = createCaptureFileOutput({ path: out, format: "pcapng", embedKeys: true });
  for (const c of output.flush()) await output.write(c);
  const report = await runParallelStitch({
    ...(depth === undefined ? {} : { depth }),
    workers: n,
    blobs: await blobsOf(storeDir),
    keyLogs: texts,
    output,
    settings: { format: "pcapng", tls: { variant: "both", embedKeys: true } },
  });
  await output.close();
  return report;
}

async function items(path: string): Promise<CaptureItem[]> {
  const out: CaptureItem[] = [];
  for await (const i of readCapture(readFileSync(path))) out.push(i);
  return out;
}

/** Each packet as "timestamp sha256(frame)", sorted; key-log blocks as their text, sorted. */
function fingerprint(list: CaptureItem[]): { packets: string[]; keys: string[] } {
  const packets: string[] = [];
  const keys: string[] = [];
  for (const i of list) {
    if (i.type === "packet")
      packets.push(`${i.timestampNs} ${createHash("sha256").update(i.data).digest("hex")}`);
    else if (i.type === "tls-key-log") keys.push(i.text);
  }
  return { packets: packets.sort(), keys: keys.sort() };
}

describe("stitch-workers - connections sharded over threads, merged by time", () => {
  const store = join(dir, "store");
  let texts: string[] = [];
  before(async () => {
    const s = openStore(store);
    await runSimulation({ dataStore: s, keyStore: s, connections: 60, seed: 5, blobSize: 128 * 1024 });
    texts = await keyTexts(store);
  });

  it("writes exactly the packets and secrets of the one-thread stitch", async () => {
    const single = join(dir, "single.pcapng");
    const merged = join(dir, "merged.pcapng");
    const a = await oneThread(store, single, texts);
    const b = await workers(store, merged, texts, 3);
    const fa = fingerprint(await items(single));
    const list = await items(merged);
    const fb = fingerprint(list);
    assert.ok(fa.packets.length > 1000, `a real run (${fa.packets.length} packets)`);
    assert.deepEqual(fb.packets, fa.packets, "the same frames with the same timestamps");
    assert.deepEqual(fb.keys, fa.keys, "the same secrets blocks");
    assert.equal(b.packets, fa.packets.length);
    assert.equal(b.records, a.report.records);
    assert.equal(b.payloadBytes, a.report.payloadBytes);
    assert.deepEqual(b.problems, []);
    const s = b.stitcher as { flowsTcp: number; flowsUdp: number; tls: { outcomes: Record<string, number> } };
    assert.equal(s.flowsTcp, a.stats.flowsTcp);
    assert.equal(s.flowsUdp, a.stats.flowsUdp);
    assert.deepEqual(s.tls.outcomes, a.stats.tls.outcomes);
    assert.equal((b.table as { gaps: number }).gaps, a.table.gaps);
    // Time order (invariant 7): both files are in strict time order.
    const backSteps = (l: CaptureItem[]) => {
      let n = 0;
      let last = 0n;
      for (const i of l) {
        if (i.type !== "packet") continue;
        if (i.timestampNs < last) n++;
        else last = i.timestampNs;
      }
      return n;
    };
    assert.equal(backSteps(await items(single)), 0, "one thread: in time order");
    assert.equal(backSteps(list), 0, "merged from the workers: in time order");
    // tshark decrypts the originals through the embedded keys: as many TLS application-data records as in
    // the one-thread file.
    const count = (f: string) =>
      tshark(["-r", f, "-Y", "tls.app_data", "-T", "fields", "-e", "frame.number"])
        .split("\n")
        .filter(Boolean).length;
    const http = (f: string) =>
      tshark(["-r", f, "-Y", "http.request", "-T", "fields", "-e", "frame.number"])
        .split("\n")
        .filter(Boolean).length;
    assert.equal(count(merged), count(single));
    assert.ok(http(merged) > 0);
    assert.equal(http(merged), http(single));
  });

  it("keeps each connection's packets in their one-thread order", async () => {
    const single = fingerprintByFlow(await items(join(dir, "single.pcapng")));
    const merged = fingerprintByFlow(await items(join(dir, "merged.pcapng")));
    assert.deepEqual(merged, single);
  });

  it("a damaged blob: reported once, by name, whatever worker saw it; the rest is stitched", async () => {
    const damaged = join(dir, "damaged");
    const s = openStore(damaged);
    await runSimulation({ dataStore: s, keyStore: s, connections: 20, seed: 9, blobSize: 64 * 1024 });
    const blobs = await blobsOf(damaged);
    const victim = blobs[Math.floor(blobs.length / 2)]!;
    const bytes = await s.readBytes(victim.key);
    // One byte inside a frame body (mid-blob) and one frame header further on.
    bytes[Math.floor(bytes.length / 3)]! ^= 0xff;
    await s.write(victim.key, bytes);
    const one = await oneThread(damaged, join(dir, "d1.pcapng"), await keyTexts(damaged));
    const par = await workers(damaged, join(dir, "d2.pcapng"), await keyTexts(damaged), 2);
    assert.ok(one.report.problems.length > 0);
    assert.deepEqual(
      par.problems.map((p) => `${p.blob} ${p.kind}`).sort(),
      one.report.problems.map((p) => `${p.blob} ${p.kind}`).sort(),
    );
    assert.equal(par.packets, one.stats.packets);
  });
});

describe("stitch-workers - problems counted once", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-workers-problems-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("records stamped out of their blob's range in connections of every shard: one problem, every record counted", async () => {
    const T0 = 1_764_000_000_000_000_000n;
    const store = openStore(dir);
    const sink = new MemorySink();
    const w = createCtapWriter(sink, { tapperId: "gw-time", sequence: 0n, startNs: T0 });
    for (let i = 1; i <= 16; i++) {
      const connId = i.toString(16).padStart(32, "0");
      // Every other connection's conn-open is stamped 2^64 - 1: out of range, in both workers' shards.
      await w.write({
        type: "conn-open",
        connId,
        timestampNs: i % 2 === 0 ? 2n ** 64n - 1n : T0 + BigInt(i),
        transport: Transport.Tcp,
        ipVersion: 4,
        client: { address: "10.0.0.1", port: 40000 + i },
        server: { address: "192.0.2.1", port: 80 },
        midstream: false,
        tcp: {},
        attributes: {},
      });
      await w.write({
        type: "data",
        connId,
        direction: Direction.ClientToServer,
        offset: 0,
        timestampNs: T0 + 1000n + BigInt(i),
        spanNs: 0,
        payload: new Uint8Array(100).fill(i),
      });
    }
    await w.finish(T0 + 1_000_000_000n);
    await store.write(dataBlobKey("", "gw-time", T0, 0n), sink.bytes());
    const one = await oneThread(dir, join(dir, "t1.pcapng"), []);
    const par = await workers(dir, join(dir, "t2.pcapng"), [], 2);
    const brief = (ps: readonly { kind: string; message: string }[]) =>
      ps.map((p) => `${p.kind} ${/^\d+ record/.exec(p.message)?.[0] ?? ""}`);
    assert.deepEqual(brief(one.report.problems), ["time-out-of-range 8 record"]);
    assert.deepEqual(brief(par.problems), ["time-out-of-range 8 record"]);
    assert.deepEqual(par.problemCounts, { "time-out-of-range": 1 });
  });
});

/** Per flow (by its addresses and ports, taken from the frame's IP/TCP headers), the frames in file order. */
function fingerprintByFlow(list: CaptureItem[]): Record<string, string[]> {
  const flows: Record<string, string[]> = {};
  for (const i of list) {
    if (i.type !== "packet") continue;
    const d = i.data;
    const ipv4 = d[12] === 0x08 && d[13] === 0x00;
    const ihl = ipv4 ? (d[14]! & 0x0f) * 4 : 40;
    const src = ipv4 ? d.subarray(26, 30) : d.subarray(22, 38);
    const dst = ipv4 ? d.subarray(30, 34) : d.subarray(38, 54);
    const l4 = 14 + ihl;
    const a = `${Buffer.from(src).toString("hex")}:${(d[l4]! << 8) | d[l4 + 1]!}`;
    const b = `${Buffer.from(dst).toString("hex")}:${(d[l4 + 2]! << 8) | d[l4 + 3]!}`;
    const key = a < b ? `${a}-${b}` : `${b}-${a}`;
    const list = flows[key] ?? [];
    list.push(createHash("sha256").update(d).digest("hex"));
    flows[key] = list;
  }
  return flows;
}

describe("stitch-workers - many rounds", () => {
  // A round whose output never came would hang the run: bounded here, so that shows as a failure.
  it(
    "each round's packets are written with that round, as the one-thread run emits them; depth 1 is raised to 2",
    {
      timeout: 120_000,
    },
    async () => {
      const store = join(dir, "many");
      const s = openStore(store);
      await runSimulation({ dataStore: s, keyStore: s, connections: 30, seed: 13, blobSize: 16 * 1024 });
      const texts = await keyTexts(store);
      const blobs = await blobsOf(store);
      assert.ok(blobs.length > 50, "a store of many small blobs");
      // One thread: packets written to the encoder (released by the time order) after each blob.
      const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
      for (const t of texts) keys.addKeyLog(t, 0);
      const encoder = createPcapngEncoder({ linkType: 1 });
      const stitcher = new Stitcher({
        sink: encoder,
        tls: { keys, variant: "both" },
        timeOrder: MERGED_TIME_ORDER,
      });
      const perBlob: number[] = [];
      await runStitchJob({
        blobs: (async function* () {
          yield* blobs;
        })(),
        stitcher,
        output: encoder,
        sink: { write: () => {} },
        watermark: "blob",
        onProgress: () => void perBlob.push(encoder.packetsWritten),
      });
      // Workers: packets written by the end of each round.
      let written = 0;
      const perRound: number[] = [];
      const report = await runParallelStitch({
        workers: 3,
        depth: 1,
        blobs,
        keyLogs: texts,
        output: {
          writeRecords: async (_chunk, packets, done) => {
            written += packets;
            done?.();
          },
        },
        settings: { format: "pcapng", tls: { variant: "both", embedKeys: false } },
        onProgress: () => void perRound.push(written),
      });
      assert.equal(report.packets, stitcher.stats.packets);
      assert.deepEqual(perRound, perBlob);
    },
  );
});

describe("stitch-workers - a worker that fails", () => {
  it("fails the run with the worker's error instead of hanging", async () => {
    const store = join(dir, "store");
    const output = createCaptureFileOutput({ path: join(dir, "failing.pcapng"), format: "pcapng" });
    await assert.rejects(
      runParallelStitch({
        workers: 2,
        blobs: await blobsOf(store),
        output,
        settings: { format: "pcapng", filter: ["accept nonsense=1"] },
      }),
      /stitch worker \d: .*nonsense/,
    );
    await output.abort();
  });
});
