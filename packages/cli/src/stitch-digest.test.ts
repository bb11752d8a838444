/**
 * `cloudtap stitch` writes the bytes recorded here, so that a restructuring that should not change the
 * output is caught. The store is ingested from the interop corpus, which is deterministic (the simulator's
 * own TLS randomness makes its stores differ run to run); one thread and two worker threads.
 * The digests were first taken before the packages were restructured (commit b99ab18). They were retaken
 * at commit 1236852 (issue 10), whose output changes on purpose: packets of all flows in time order (the
 * time-order stage), causal per-flow clocks, decrypted data stamped at the end of its chunk, a cleartext
 * twin with its own IPv4 ids, and in `both` the original flow started once its first bytes say TLS or not.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { corpusDir } from "@cloudtap/test-harness";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CORPUS = corpusDir();

function cloudtap(...args: string[]): void {
  const r = spawnSync(process.execPath, ["--import", "tsx", MAIN, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

const EXPECTED: Record<string, string> = {
  "original.pcapng": "13abebb0a62fc8e0fc55a7d7dc2b0f11e598c8b0af7d775d0c93c02624bc8c82",
  "cleartext.pcapng": "58a47361d1b727bf76a0403b74d08badf45fc4a3119c9aa0e1f4d85932ad5250",
  "both.pcapng": "1126d849e3ff110694722d57542010299deabad3f75461676d966d48e34eaaf6",
  "original-w2.pcap": "aa43cc4023995e83ed1c40a084d29a56076670621adc8b554423019c1d059039",
  "cleartext-w2.pcap": "28940ee8efbe7f0ff5da946b02a417032afe05aa7e941fc12143211c95eac890",
  "both-w2.pcap": "8f1cad2bbfef810c884f9543963c6107f10a180a28af7d255d7fdf1c0394364d",
};

describe("cli - stitch output is byte-identical to the recorded digests", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-digest-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const store = join(dir, "store");
  const ingests: [string, string][] = [
    ["captures/hotplace__http2.pcapng", "keys/hotplace__http.sslkeylog"],
    ["captures/snet__tls1.3_aes128.pcap", "keys/snet__log.txt"],
    ["captures/hotplace__curl_http1_tls12.pcapng", "keys/hotplace__tls12.sslkeylog"],
  ];

  it("three ingested captures, every variant, one thread and two workers", () => {
    for (const [pcap, keylog] of ingests)
      cloudtap("ingest", "--pcap", join(CORPUS, pcap), "--keylog", join(CORPUS, keylog), "--out", store);
    for (const variant of ["original", "cleartext", "both"]) {
      const one = join(dir, `${variant}.pcapng`);
      const two = join(dir, `${variant}-w2.pcap`);
      cloudtap("stitch", "--source", store, "--pcapng", one, "--variant", variant, "--workers", "1");
      cloudtap("stitch", "--source", store, "--pcap", two, "--variant", variant, "--workers", "2");
    }
    const got: Record<string, string> = {};
    for (const name of Object.keys(EXPECTED))
      got[name] = createHash("sha256")
        .update(readFileSync(join(dir, name)))
        .digest("hex");
    assert.deepEqual(got, EXPECTED);
  });
});
