/**
 * A stalled NDR: the pcapng sink sits on a file system that is full (a 512 KiB tmpfs, mounted for the test;
 * it needs root, and is skipped with the reason otherwise). mirror-egress's writes fail (ENOSPC): it acks
 * nothing it could not write, exits, and is restarted by `cloudtap up`, each time from its journal (the file
 * cut back to its last commit); the stitchers' mirror streams break, so they stop and restart too, their
 * chunk messages unacked. JetStream holds the backlog meanwhile (shown by `cloudtap status`: unacked and
 * undelivered chunk messages, the egress's sink failures), and every service's memory stays bounded. Then the
 * file system grows (remount): the backlog drains, and the pcapng holds every flow of both variants as
 * one-process `cloudtap stitch` writes them, with no duplicate packet.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { byEndpoints, CLOUDTAP_BIN, followStreams } from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { cloudtap } from "./cloudtap-cli.js";
import { filesUnder, land, meshSettled, parentOf, sleep, status, sum, until } from "./mesh-faults.js";

/** The bound asserted on every service's resident memory while the NDR is stalled. */
const RSS_BOUND = 768 * 2 ** 20;

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

describe("mesh - a stalled NDR (full file system): backlog in JetStream, bounded memory, drained after", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-mesh-stall-"));
  const ndr = join(dir, "ndr");
  mkdirSync(ndr);
  const mounted =
    spawnSync("mount", ["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", ndr], { encoding: "utf8" })
      .status === 0;
  after(() => {
    if (mounted) spawnSync("umount", [ndr]);
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    "mesh - the egress stalls on ENOSPC, nothing is lost, the backlog drains when space is back",
    {
      skip: mounted ? false : "mounting a tmpfs needs root (mount -t tmpfs)",
    },
    async () => {
      const staging = join(dir, "staging");
      const stagingKeys = join(dir, "staging-keys");
      const store = join(dir, "store");
      const keys = join(dir, "keys");
      const stateDir = join(dir, "state");
      const sim = cloudtap(
        "simulate",
        "--out",
        staging,
        "--keys-out",
        stagingKeys,
        "--connections",
        "32",
        "--seed",
        "61",
        "--blob-size",
        "24KiB",
      );
      assert.equal(sim.status, 0, sim.stderr);
      mkdirSync(join(store, "data"), { recursive: true });
      mkdirSync(join(keys, "keys"), { recursive: true });
      land(stagingKeys, keys, filesUnder(stagingKeys, ".keylog"));
      const live = join(ndr, "live.pcapng");
      const up = spawn(
        process.execPath,
        [
          CLOUDTAP_BIN,
          "up",
          "--source",
          store,
          "--keys",
          keys,
          "--variant",
          "both",
          "--fetchers",
          "1",
          "--stitchers",
          "2",
          "--shards",
          "4",
          "--pcapng",
          live,
          "--state-dir",
          stateDir,
        ],
        {
          stdio: ["ignore", "pipe", "pipe"],
          // A short lateness: the simulator's 30 s of record time would otherwise stay in the stitchers' time
          // order until the stop (2 min by default), and the NDR would never see the traffic before it.
          env: { ...process.env, STITCHER_ACK_WAIT: "4s", STITCHER_LATENESS: "2s", FETCHER_POLL: "2s" },
        },
      );
      let upLog = "";
      up.stdout.on("data", (d) => {
        upLog += String(d);
      });
      up.stderr.on("data", (d) => {
        upLog += String(d);
      });
      const exited = new Promise<number | null>((resolve) => up.once("exit", (code) => resolve(code)));
      try {
        await until("the mesh to run", 240_000, () => (/continuous; Ctrl-C/.test(upLog) ? true : undefined));
        land(join(dir, "staging"), store, filesUnder(staging, ".ctap"));

        // Stalled: the egress fails on the full file system and is restarted, again and again; the chunk
        // messages stay in JetStream (unacked or undelivered). Memory is sampled all along.
        const peak = new Map<string, number>();
        const sampleMemory = () => {
          const mesh = JSON.parse(readFileSync(join(stateDir, "mesh.json"), "utf8")) as {
            instances: { name: string; pid?: number }[];
          };
          for (const i of mesh.instances)
            if (i.pid !== undefined && parentOf(i.pid) === up.pid)
              peak.set(i.name, Math.max(peak.get(i.name) ?? 0, rssOf(i.pid)));
        };
        // What the last probe saw, for the failure message.
        let seen = "no status yet";
        const stalled = await until("the egress to stall", 300_000, () => {
          sampleMemory();
          // While the NDR is full the egress and the stitchers whose link it breaks restart again and again,
          // so there is seldom a moment with every instance up: the status of those that answer will do.
          const s = status(stateDir, { evenIfDown: true });
          if (!s) {
            seen = "cloudtap status printed nothing";
            return undefined;
          }
          const egress = s.instances.find((i) => i.instance.service === "mirror-egress")!;
          const backlog =
            sum(s, "stitcher", "stitcher_unacked_messages") + sum(s, "stitcher", "stitcher_backlog_messages");
          seen = `egress restarts ${egress.instance.restarts}, backlog ${backlog}`;
          return egress.instance.restarts >= 2 && backlog > 0 ? { s, backlog } : undefined;
        }).catch((err: Error) => {
          throw new Error(`${err.message} (last seen: ${seen}); up's output:\n${upLog.slice(-3000)}`);
        });
        for (let i = 0; i < 10; i++) {
          sampleMemory();
          await sleep(1000);
        }
        const stall = status(stateDir) ?? stalled.s;
        const restarts = stall.instances.find((i) => i.instance.service === "mirror-egress")!.instance
          .restarts;
        process.stdout.write(
          `# stalled: egress restarts ${restarts}, chunk messages held in JetStream ${stalled.backlog}; peak RSS ${[...peak].map(([n, b]) => `${n} ${(b / 2 ** 20).toFixed(0)} MiB`).join(", ")}\n`,
        );
        for (const [name, bytes] of peak) assert.ok(bytes < RSS_BOUND, `${name}: ${bytes} bytes resident`);
        assert.ok(!existsSync(live), "the file was never completed while the NDR was full");

        // The NDR comes back: the backlog drains.
        let gapsAtDrain = 0;
        assert.equal(spawnSync("mount", ["-o", "remount,size=256m", ndr]).status, 0);
        let stable = 0;
        await until("the backlog to drain", 600_000, () => {
          // Not before every stitcher reports its shards: one that restarted after the NDR came back answers its
          // status while its shards start, and its share of the backlog reads 0 then (the CI run that lost a
          // shard's flows stopped the mesh at such a moment).
          const s = status(stateDir);
          if (s) gapsAtDrain = sum(s, "stitcher", "stitcher_gaps");
          stable = meshSettled(s, 4) ? stable + 1 : 0;
          return stable >= 3 ? true : undefined;
        });
        process.stdout.write(`# drained: the stitchers count ${gapsAtDrain} gaps\n`);
        up.kill("SIGTERM");
        assert.equal(await exited, 0, upLog.slice(-3000));
      } finally {
        if (up.exitCode === null) {
          up.kill("SIGTERM");
          await exited;
        }
      }

      // Everything, once.
      const oneFile = join(dir, "one.pcapng");
      const one = cloudtap(
        "stitch",
        "--source",
        store,
        "--keys",
        keys,
        "--pcapng",
        oneFile,
        "--variant",
        "both",
      );
      assert.equal(one.status, 0, one.stderr);
      const meshFlows = byEndpoints(followStreams(live));
      const oneFlows = byEndpoints(followStreams(oneFile));
      assert.deepEqual([...meshFlows.keys()].sort(), [...oneFlows.keys()].sort());
      for (const [flow, want] of oneFlows) assert.deepEqual(meshFlows.get(flow), want, flow);
      const [got, reference] = await Promise.all([digestCapture(live), digestCapture(oneFile)]);
      assert.deepEqual(got.udpDigests, reference.udpDigests);
      const duplicates = got.packets - new Set(got.packetDigests).size;
      process.stdout.write(
        `# drained: ${got.packets} packets (one process ${reference.packets}), ${duplicates} duplicates\n`,
      );
      assert.equal(duplicates, 0);
    },
  );
});
