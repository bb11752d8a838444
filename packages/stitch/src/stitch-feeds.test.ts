/**
 * Which flows go to which feed (docs/stitching.md, "Feeds"), on simulated traffic with every key: with
 * `cleartext`, every connection reaches the cleartext feed (decrypted TLS flows and the never-encrypted
 * ones: plain HTTP, DNS); with `both`, every connection reaches the original feed as tapped, the plain ones
 * marked plain (so a sink with separate feeds gives them to the cleartext feed as well), and every TLS
 * connection that decrypts has its cleartext twin, with its own IPv4 id sequence.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import type { FlowAwareFrameSink, FrameFlowContext, FrameSink } from "@cloudtap/packet";
import { keysPrefix } from "@cloudtap/tap-format";
import { runSimulation, type SimulationManifest } from "@cloudtap/tapsim";
import { createKeyStore } from "@cloudtap/tls";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";
import type { Variant } from "./tls-variant.js";

interface Feed {
  readonly context: FrameFlowContext;
  packets: number;
  readonly ipIds: number[];
}

/** Records each flow's context, its packets and its first IPv4 ids. */
class FeedRecorder implements FlowAwareFrameSink {
  readonly feeds: Feed[] = [];
  private frame = new Uint8Array(0);
  begin(length: number): Uint8Array {
    this.frame = new Uint8Array(length);
    return this.frame;
  }
  commit(): void {}
  forFlow(context: FrameFlowContext): FrameSink {
    const feed: Feed = { context, packets: 0, ipIds: [] };
    this.feeds.push(feed);
    let frame = new Uint8Array(0);
    return {
      begin: (length) => {
        frame = new Uint8Array(length);
        return frame;
      },
      commit: () => {
        feed.packets++;
        if (feed.ipIds.length < 4 && frame[12] === 0x08) feed.ipIds.push((frame[18]! << 8) | frame[19]!);
      },
    };
  }
}

describe("stitch - feeds per variant", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-feeds-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const simulated = (async () => {
    const store = openStore(join(dir, "store"));
    const { manifest } = await runSimulation({
      dataStore: store,
      keyStore: store,
      connections: 60,
      seed: 41,
    });
    return { store, manifest };
  })();

  async function feedsOf(variant: Variant): Promise<{ manifest: SimulationManifest; feeds: Feed[] }> {
    const { store, manifest } = await simulated;
    const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
    for await (const o of store.list(keysPrefix(""))) keys.addKeyLog(await store.readBytes(o.key), 0);
    const listed = [];
    for await (const b of listBlobs(store)) listed.push(b);
    const sink = new FeedRecorder();
    const stitcher = new Stitcher({ sink, tls: { keys, variant } });
    await runStitchJob({
      blobs: (async function* () {
        yield* sortBlobsByTime(listed);
      })(),
      stitcher,
      output: { drain: () => [], flush: () => [] },
      sink: { write: () => {} },
    });
    return { manifest, feeds: sink.feeds.filter((f) => f.packets > 0) };
  }

  it("stitch - cleartext: every connection in the cleartext feed, TLS decrypted, plain ones as they are", async () => {
    const { manifest, feeds } = await feedsOf("cleartext");
    const plain = manifest.connections.filter((c) => c.tls === null);
    assert.ok(plain.some((c) => c.transport === "udp") && plain.some((c) => c.transport === "tcp"));
    for (const c of manifest.connections) {
      const mine = feeds.filter((f) => f.context.connId === c.connId);
      assert.deepEqual(
        mine.map((f) => f.context.variant),
        ["cleartext"],
        `${c.protocol} ${c.connId}: one flow, in the cleartext feed`,
      );
      assert.equal(mine[0]!.context.plain === true, c.tls === null, `${c.protocol}: plain iff not TLS`);
    }
  });

  it("stitch - both: every connection as tapped in the original feed; plain ones marked; twins for TLS", async () => {
    const { manifest, feeds } = await feedsOf("both");
    for (const c of manifest.connections) {
      const mine = feeds.filter((f) => f.context.connId === c.connId);
      const original = mine.filter((f) => f.context.variant === "original");
      const clear = mine.filter((f) => f.context.variant === "cleartext");
      assert.equal(original.length, 1, `${c.protocol}: in the original feed`);
      assert.equal(original[0]!.context.plain === true, c.tls === null, `${c.protocol}: plain iff not TLS`);
      assert.equal(clear.length, c.tls === null ? 0 : 1, `${c.protocol}: a cleartext twin iff TLS`);
      if (clear.length === 1 && c.ipVersion === 4) {
        assert.notDeepEqual(clear[0]!.ipIds, original[0]!.ipIds, "the twin has its own IPv4 ids");
      }
    }
  });
});
