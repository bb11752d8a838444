/**
 * Two fetcher processes against a real nats-server and a directory store filled by the simulator, in one-shot
 * mode: every record of every blob lands in CTAP_CHUNKS exactly once, the blobs are split between the two,
 * a blob that is not CTAP is quarantined with its reason, and every shard gets one end-of-window marker.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  BucketName,
  type Bus,
  type BusMessage,
  connectBus,
  consumeMessages,
  ensureConsumer,
  ensureKv,
  getHeader,
  getJson,
  MeshHeader,
  StreamName,
} from "@cloudtap/bus";
import { type BlobStateEntry, blobStateKey } from "@cloudtap/mesh";
import { openStore } from "@cloudtap/object-store";
import { StatusService } from "@cloudtap/proto";
import { createClient } from "@cloudtap/rpc";
import { connShard, dataBlobKey, readCtapBytes, writeConnId } from "@cloudtap/tap-format";
import { runSimulation } from "@cloudtap/tapsim";
import { type NatsServer, startNatsServer } from "@cloudtap/test-harness";
import { credentials } from "@grpc/grpc-js";

const SHARDS = 4;
const RUN = "t1";
const repoRoot = new URL("../../..", import.meta.url).pathname;

interface FetcherProcess {
  readonly instance: string;
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly done: Promise<void>;
  readonly statusPort: Promise<number>;
}

function startFetcher(instance: string, env: Record<string, string>): FetcherProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "services/fetcher/src/main.ts"], {
    cwd: repoRoot,
    env: { ...process.env, ...env, FETCHER_INSTANCE: instance, FETCHER_LOG_LEVEL: "debug" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let resolveDone!: () => void;
  let resolvePort!: (port: number) => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const statusPort = new Promise<number>((r) => {
    resolvePort = r;
  });
  let buffered = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (d: string) => {
    buffered += d;
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        line = { msg: "not json", text };
      }
      lines.push(line);
      if (typeof line["msg"] === "string" && line["msg"].startsWith("window done")) resolveDone();
      if (line["msg"] === "status server listening") resolvePort(line["port"] as number);
    }
  });
  return { instance, child, lines, done, statusPort };
}

async function stopProcess(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  return exited;
}

function shardOf(connId: string): number {
  const b = new Uint8Array(16);
  writeConnId(connId, b, 0);
  return connShard(b, SHARDS);
}

describe("fetcher - two one-shot fetcher processes against a real nats-server", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-fetcher-"));
  const storeDir = join(dir, "store");
  let nats: NatsServer;
  let bus: Bus;
  const fetchers: FetcherProcess[] = [];
  let expectedRecords = 0;
  let blobKeys: string[] = [];
  const junkKey = dataBlobKey("", "tap-junk", 1_741_942_800_000_000_000n, 1n);

  before(async () => {
    nats = await startNatsServer({ jetstream: true });
    const store = openStore(storeDir);
    await runSimulation({ dataStore: store, keyStore: store, connections: 16, seed: 5, blobSize: 8 * 1024 });
    await store.write(junkKey, new TextEncoder().encode("this is not a CTAP blob at all"));
    for await (const o of store.list("data/")) {
      if (!o.key.endsWith(".ctap")) continue;
      blobKeys.push(o.key);
      if (o.key === junkKey) continue;
      for await (const item of readCtapBytes(await store.readBytes(o.key), { onCorruption: "resync" })) {
        if (item.type !== "header" && item.type !== "blob-end" && item.type !== "corruption")
          expectedRecords++;
      }
    }
    blobKeys = blobKeys.sort();
    assert.ok(blobKeys.length > 20, `the simulator made ${blobKeys.length} blobs`);

    const env = {
      FETCHER_SOURCE: storeDir,
      FETCHER_NATS_URL: nats.url,
      FETCHER_SHARDS: String(SHARDS),
      FETCHER_RUN: RUN,
      FETCHER_ONCE: "true",
      FETCHER_STATUS_LISTEN: "127.0.0.1:0",
    };
    fetchers.push(startFetcher("f1", env), startFetcher("f2", env));
    const timeout = setTimeout(() => {
      for (const f of fetchers) console.error(f.instance, JSON.stringify(f.lines.slice(-20)));
    }, 110_000);
    await Promise.all(fetchers.map((f) => f.done));
    clearTimeout(timeout);
    bus = await connectBus({ servers: nats.url, name: "fetcher-test" });
  });

  after(async () => {
    for (const f of fetchers) await stopProcess(f.child);
    await bus?.close();
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("fetcher - every record of every blob is in CTAP_CHUNKS exactly once, in the right shard", async () => {
    await ensureConsumer(bus.jsm, StreamName.Chunks, "check-all", { filterSubject: `ctap.chunks.${RUN}.>` });
    const info = await bus.jsm.consumers.info(StreamName.Chunks, "check-all");
    const total = info.num_pending;
    const stream = await consumeMessages(bus.js, StreamName.Chunks, "check-all", { maxMessages: 500 });
    const got: BusMessage[] = [];
    for await (const m of stream) {
      got.push(m);
      m.ack();
      if (got.length === total) break;
    }
    await stream.stop();
    let records = 0;
    const batchIds = new Set<string>();
    const eofs = new Map<number, number>();
    let marks = 0;
    for (const m of got) {
      const shard = Number(m.subject.split(".").at(-1));
      if (getHeader(m.headers, MeshHeader.Eof) === "1") {
        assert.equal(m.data.length, 0);
        eofs.set(shard, (eofs.get(shard) ?? 0) + 1);
        continue;
      }
      if (getHeader(m.headers, MeshHeader.Watermark) !== undefined) {
        // A watermark (one-shot: how far the window is published): empty, no records.
        assert.equal(m.data.length, 0);
        marks++;
        continue;
      }
      const id = `${getHeader(m.headers, MeshHeader.Blob)}#${shard}#${getHeader(m.headers, MeshHeader.Batch)}`;
      assert.ok(!batchIds.has(id), `batch ${id} stored twice`);
      batchIds.add(id);
      for await (const item of readCtapBytes(m.data)) {
        if (item.type === "header" || item.type === "blob-end" || item.type === "corruption") continue;
        assert.equal(shardOf(item.connId), shard);
        records++;
      }
    }
    process.stdout.write(`# ${records} records, ${marks} watermark messages\n`);
    assert.equal(records, expectedRecords);
    assert.deepEqual(
      [...eofs.entries()].sort((a, b) => a[0] - b[0]),
      Array.from({ length: SHARDS }, (_, s) => [s, 1]),
      "one end-of-window marker per shard",
    );
  });

  it("fetcher - the blobs were split between the two processes, none done twice", (t) => {
    const doneBy = new Map<string, string>();
    for (const f of fetchers) {
      for (const l of f.lines) {
        if (l["msg"] !== "blob done") continue;
        const blob = l["blob"] as string;
        assert.ok(!doneBy.has(blob), `${blob} done by ${doneBy.get(blob)} and ${f.instance}`);
        doneBy.set(blob, f.instance);
      }
    }
    assert.equal(doneBy.size, blobKeys.length - 1);
    const counts = fetchers.map((f) => [...doneBy.values()].filter((i) => i === f.instance).length);
    t.diagnostic(`${blobKeys.length} blobs; done by f1 / f2: ${counts.join(" / ")}`);
    assert.ok(
      counts.every((n) => n > 0),
      `work split ${counts.join(" / ")}`,
    );
  });

  it("fetcher - the corrupt blob is quarantined with its reason; the others are done", async () => {
    const kv = await ensureKv(bus.js, BucketName.BlobState);
    const junk = await getJson<BlobStateEntry>(kv, blobStateKey(RUN, junkKey));
    assert.equal(junk?.state, "quarantined");
    assert.match(junk?.reason ?? "", /^bad-magic: /);
    for (const key of blobKeys) {
      if (key === junkKey) continue;
      assert.equal((await getJson<BlobStateEntry>(kv, blobStateKey(RUN, key)))?.state, "done", key);
    }
  });

  it("fetcher - the status service reports done and the counters", async () => {
    let done = 0;
    let quarantined = 0;
    for (const f of fetchers) {
      const client = createClient(StatusService, `127.0.0.1:${await f.statusPort}`, {
        credentials: credentials.createInsecure(),
      });
      try {
        const status = await client.getStatus({});
        assert.equal(status.service, "fetcher");
        assert.equal(status.state, "done");
        done += status.counters["blobs_done"] ?? 0;
        quarantined += status.counters["blobs_quarantined{reason=bad-magic}"] ?? 0;
      } finally {
        client.close();
      }
    }
    assert.equal(done, blobKeys.length - 1);
    assert.equal(quarantined, 1);
  });

  it("fetcher - SIGTERM stops a fetcher cleanly", async () => {
    for (const f of fetchers) assert.equal(await stopProcess(f.child), 0);
  });
});
