/**
 * CTAP_CHUNKS under a byte limit smaller than the data that goes through it (real nats-server, `cloudtap up
 * --nats`): batches are removed once their stitcher acked them (work-queue retention). A one-shot run of D
 * bytes under a limit of 1.6 D completes, its output as `cloudtap stitch` writes it, and leaves nothing in
 * the stream; then a continuous mesh on the same server replays the whole window (D more bytes, 2 D in all)
 * and that completes too; once the replay finished its consumers are gone and the stream holds none of its
 * chunks. (With limits retention the stream kept the first run's acked batches, the replay filled it, and its
 * fetcher waited for room forever.)
 *
 * The limit is above one window's data on purpose: in a one-shot window the stitchers hold a batch until
 * every connection with a record in it completed, and for this simulator's traffic that is most of the
 * window; a limit below what is held stalls the run (the fetcher waits, `stream_full_waits`), as
 * docs/mesh.md says.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  byEndpoints,
  CLOUDTAP_BIN,
  followStreams,
  type NatsServer,
  startNatsServer,
} from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap } from "./cloudtap-cli.js";

interface Jsz {
  readonly account_details?: readonly {
    readonly stream_detail?: readonly {
      readonly name: string;
      readonly config?: { readonly max_bytes?: number; readonly retention?: string };
      readonly state: { readonly messages: number; readonly bytes: number };
      readonly consumer_detail?: readonly { readonly name: string }[];
    }[];
  }[];
}

async function streamOf(nats: NatsServer, name: string) {
  const res = await fetch(`${nats.monitorUrl}/jsz?accounts=true&streams=true&consumers=true&config=true`);
  const jsz = (await res.json()) as Jsz;
  const stream = jsz.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === name);
  assert.ok(stream, `stream ${name} on the server`);
  return stream;
}

function blobBytes(store: string): { blobs: number; bytes: number } {
  const files = (readdirSync(join(store, "data"), { recursive: true }) as string[])
    .map(String)
    .filter((f) => f.endsWith(".ctap"));
  return { blobs: files.length, bytes: files.reduce((n, f) => n + statSync(join(store, "data", f)).size, 0) };
}

describe("mesh - CTAP_CHUNKS keeps only what is unacked", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-retention-"));
  const store = join(dir, "store");
  let nats: NatsServer;
  let up: ChildProcess | undefined;
  let limit = 0;
  let blobCount = 0;
  after(async () => {
    if (up && up.exitCode === null) {
      const gone = new Promise((resolve) => up!.once("exit", resolve));
      up.kill("SIGTERM");
      await gone;
    }
    await nats?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  before(async () => {
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "24",
      "--seed",
      "21",
      "--blob-size",
      "24KiB",
    );
    assert.equal(sim.status, 0, sim.stderr);
    nats = await startNatsServer({ jetstream: true });
    const data = blobBytes(store);
    // Chunk batches carry about the blobs' bytes: the one-shot run fits, the run and the replay do not.
    limit = Math.floor(1.6 * data.bytes);
    blobCount = data.blobs;
    process.stdout.write(`# ${data.blobs} blobs, ${data.bytes} bytes; CTAP_CHUNKS max bytes ${limit}\n`);
  });

  it("a one-shot run completes as cloudtap stitch under the byte limit, and leaves the stream empty", async () => {
    const meshFile = join(dir, "mesh.pcapng");
    const r = spawnSync(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "up",
        "--source",
        store,
        "--once",
        "--nats",
        nats.url,
        "--variant",
        "both",
        "--stitchers",
        "2",
        "--shards",
        "4",
        "--pcapng",
        meshFile,
        "--state-dir",
        join(dir, "once-state"),
        "--json",
      ],
      {
        encoding: "utf8",
        timeout: 480_000,
        env: { ...process.env, FETCHER_CHUNKS_MAX_BYTES: String(limit) },
      },
    );
    assert.equal(r.signal, null, `up did not finish: ${r.stderr.slice(-3000)}`);
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      instances: { service: string; counters?: Record<string, number> }[];
    };
    const fetcher = summary.instances.find((i) => i.service === "fetcher")!.counters ?? {};
    process.stdout.write(
      `# published ${fetcher["bytes_published"]} bytes in ${fetcher["batches_published"]} batches; ` +
        `the fetcher waited for room ${fetcher["stream_full_waits"]} times\n`,
    );
    assert.ok((fetcher["bytes_published"] ?? 0) * 2 > limit, "the run and its replay exceed the limit");

    const chunks = await streamOf(nats, "CTAP_CHUNKS");
    assert.equal(chunks.config?.retention, "workqueue");
    assert.equal(chunks.config?.max_bytes, limit);
    assert.deepEqual([chunks.state.messages, chunks.state.bytes], [0, 0], "every batch acked and removed");

    const oneFile = join(dir, "one.pcapng");
    const one = cloudtap("stitch", "--source", store, "--pcapng", oneFile, "--variant", "both");
    assert.equal(one.status, 0, one.stderr);
    const [mesh, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
    assert.deepEqual(mesh.udpDigests, reference.udpDigests);
    assert.deepEqual(mesh.keyLogLines, reference.keyLogLines);
    assert.deepEqual(byEndpoints(followStreams(meshFile)), byEndpoints(followStreams(oneFile)));
  });

  it("a replay of the whole window on top completes; once finished its consumers and chunks are gone", async () => {
    const stateDir = join(dir, "cont-state");
    up = spawn(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "up",
        "--source",
        store,
        "--nats",
        nats.url,
        "--shards",
        "4",
        "--pcapng",
        join(dir, "live.pcapng"),
        "--state-dir",
        stateDir,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FETCHER_CHUNKS_MAX_BYTES: String(limit) } },
    );
    let log = "";
    up.stderr!.on("data", (d) => {
      log += d;
    });
    up.stdout!.resume();
    const deadline = Date.now() + 180_000;
    while (!/up: continuous/.test(log)) {
      assert.equal(up.exitCode, null, `up exited: ${log}`);
      assert.ok(Date.now() < deadline, `up did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const replayFile = join(dir, "replay.pcapng");
    const replay = cloudtap(
      "replay",
      "--state-dir",
      stateDir,
      "--since",
      "0",
      "--until",
      "4000000000",
      "--pcapng",
      replayFile,
      "--json",
    );
    assert.equal(replay.status, 0, replay.stderr);
    const done = JSON.parse(replay.stdout) as { runId: string; blobsDone: number };
    const runId = done.runId;
    assert.match(runId, /^r/);
    assert.equal(done.blobsDone, blobCount, "the replay went through every blob again");
    // Every instance that ran a part removes the run once its part ended (within a poll or two).
    let chunks = await streamOf(nats, "CTAP_CHUNKS");
    let blobs = await streamOf(nats, "CTAP_BLOBS");
    const ofRun = () =>
      [...(chunks.consumer_detail ?? []), ...(blobs.consumer_detail ?? [])]
        .map((c) => c.name)
        .filter((n) => n.includes(runId));
    const until = Date.now() + 60_000;
    while (ofRun().length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 500));
      chunks = await streamOf(nats, "CTAP_CHUNKS");
      blobs = await streamOf(nats, "CTAP_BLOBS");
    }
    assert.deepEqual(ofRun(), [], "the replay's consumers are gone");
    assert.equal(chunks.state.messages, 0, "no chunk of the replay (nor of the live run) is left");
    const live = (chunks.consumer_detail ?? [])
      .map((c) => c.name)
      .filter((n) => n.startsWith("stitch-live-"));
    assert.equal(live.length, 4, "the live run's consumers stay");
    assert.ok((await digestCapture(replayFile)).packets > 0, "the replay wrote its window");
  });
});
