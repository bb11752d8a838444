/**
 * Chaos: `cloudtap up` in continuous mode while blobs land over time and most key logs after the data they
 * decrypt (see mesh-faults.ts), and service instances are killed with SIGKILL at random moments: every
 * service (fetcher, key-broker, stitcher, mirror-egress) and nats-server itself (JetStream on file storage,
 * restarted by `up` on the same port and store folder), CLOUDTAP_CHAOS_KILLS times each (default 2;
 * `pnpm test:chaos` runs more), in a shuffled order, 1-4 s after the mesh answers again. The draws come from a
 * seeded generator: the seed is printed, and CLOUDTAP_CHAOS_SEED replays a run.
 *
 * Judged: every connection of the manifest in the pcapng with every byte, both variants as one-process
 * `cloudtap stitch` writes them (so every TLS connection was decrypted), every datagram and key; the
 * duplicates (packets of the same time and bytes) counted and printed: none in a file sink (the egress
 * drops frames it wrote and resumes its file from its journal after its own kill; docs/mesh.md).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generator, runMeshUnderFaults } from "./mesh-faults.js";

const KILLS_PER_SERVICE = Number(process.env["CLOUDTAP_CHAOS_KILLS"] ?? "2");
const SEED = Number(process.env["CLOUDTAP_CHAOS_SEED"] ?? String(Math.floor(Math.random() * 2 ** 31)));
const SERVICES = ["nats-server", "fetcher", "key-broker", "stitcher", "mirror-egress"] as const;

describe("mesh - chaos: SIGKILL of every service while blobs and keys land", () => {
  it("mesh - chaos: every connection complete and decrypted, duplicates counted (none in the file)", async () => {
    process.stdout.write(
      `# chaos seed ${SEED} (CLOUDTAP_CHAOS_SEED), ${KILLS_PER_SERVICE} kills per service (CLOUDTAP_CHAOS_KILLS)\n`,
    );
    const random = generator(SEED);
    const plan: string[] = SERVICES.flatMap((s) => Array.from({ length: KILLS_PER_SERVICE }, () => s));
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    const pauses = plan.map(() => 1000 + Math.floor(random() * 3000));
    const picks = plan.map(() => random());
    const result = await runMeshUnderFaults({
      plan,
      signal: "SIGKILL",
      pauseMs: (k) => pauses[k]!,
      pick: (k) => picks[k]!,
      keep: process.env["CLOUDTAP_CHAOS_KEEP"] !== undefined,
    });
    assert.equal(result.signalled.length, plan.length);
    for (const service of SERVICES)
      assert.ok(
        result.signalled.some((s) => s.startsWith(service)),
        `${service} was never killed`,
      );
    assert.equal(result.duplicates, 0, "the file sink has no duplicate packet");
  });
});
