/**
 * A stalled NDR on PCAP-over-IP: a reader connects to mirror-egress's PCAP-over-IP server and never reads.
 * The policy is `drop` (MIRROR_EGRESS_PCAP_OVER_IP_SLOW): once that reader's buffer passes its cap (8 MiB
 * beyond what the sockets hold), its packets are dropped and counted (`egress_sink_drops{reason}` in
 * `cloudtap status --json`), the egress's memory stays bounded, and the other sink, a pcapng, gets every
 * packet as one-process `cloudtap stitch` writes it: one stalled reader never slows or loses the rest.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LocalMesh } from "@cloudtap/local-mesh";
import { byEndpoints, followStreams } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap } from "./cloudtap-cli.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

describe("mesh - a PCAP-over-IP reader that never reads", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-slow-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("mesh - its packets are dropped and counted, the pcapng complete, memory bounded", async () => {
    const store = join(dir, "store");
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "96",
      "--seed",
      "33",
      "--blob-size",
      "32KiB",
    );
    assert.equal(sim.status, 0, sim.stderr);
    const port = await freePort();
    const meshFile = join(dir, "mesh.pcapng");
    const stateDir = join(dir, "state");
    const mesh = new LocalMesh({
      stateDir,
      source: store,
      once: true,
      fetchers: 1,
      stitchers: 2,
      shardCount: 4,
      variant: "both",
      outputs: { pcapng: [meshFile], pcapOverIp: `127.0.0.1:${port}`, pcapOverIpSlow: "drop" },
      // The egress waits for the reader before its first packet, so the reader sees the whole stream.
      env: { MIRROR_EGRESS_PCAP_OVER_IP_WAIT: "1" },
    });
    // The stalled reader: connects as soon as the server listens, and never reads.
    let reader: Socket | undefined;
    let stop = false;
    const connecting = (async () => {
      while (!reader && !stop) {
        reader = await new Promise<Socket | undefined>((resolve) => {
          const s = connect(port, "127.0.0.1");
          s.once("connect", () => {
            s.pause();
            resolve(s);
          });
          s.once("error", () => resolve(undefined));
        });
        if (!reader) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let drops: Record<string, number> = {};
    let egressPeak = 0;
    try {
      await mesh.start();
      await connecting;
      await mesh.waitUntilDone();
      const r = cloudtap("status", "--state-dir", stateDir, "--json");
      assert.equal(r.status, 0, r.stderr);
      const s = JSON.parse(r.stdout) as {
        instances: {
          instance: { service: string; pid?: number };
          status?: { counters: Record<string, number> };
        }[];
      };
      const egress = s.instances.find((i) => i.instance.service === "mirror-egress")!;
      drops = Object.fromEntries(
        Object.entries(egress.status?.counters ?? {}).filter(([k]) => k.startsWith("egress_sink_drops{")),
      );
      const pid = mesh.state.instances.find((i) => i.service === "mirror-egress")?.pid;
      if (pid) egressPeak = peakRss(pid);
    } finally {
      stop = true;
      await mesh.stop();
      reader?.destroy();
    }
    const dropped = Object.entries(drops)
      .filter(([k]) => k.includes("pcap-over-ip"))
      .reduce((n, [, v]) => n + v, 0);
    process.stdout.write(
      `# drops ${JSON.stringify(drops)}; egress peak RSS ${(egressPeak / 2 ** 20).toFixed(0)} MiB\n`,
    );
    assert.ok(dropped > 0, `the stalled reader's packets are counted as dropped: ${JSON.stringify(drops)}`);
    assert.ok(egressPeak > 0 && egressPeak < 768 * 2 ** 20, `egress peak RSS ${egressPeak}`);

    // The pcapng is whole: what one process writes, flow for flow.
    const oneFile = join(dir, "one.pcapng");
    const one = cloudtap("stitch", "--source", store, "--pcapng", oneFile, "--variant", "both");
    assert.equal(one.status, 0, one.stderr);
    const meshFlows = byEndpoints(followStreams(meshFile));
    const oneFlows = byEndpoints(followStreams(oneFile));
    assert.deepEqual([...meshFlows.keys()].sort(), [...oneFlows.keys()].sort());
    for (const [flow, want] of oneFlows) assert.deepEqual(meshFlows.get(flow), want, flow);
    const [got, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
    assert.deepEqual(got.udpDigests, reference.udpDigests);
    assert.equal(got.packets - new Set(got.packetDigests).size, 0, "no duplicate packet");
  });
});
