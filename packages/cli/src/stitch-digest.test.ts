/**
 * `cloudtap stitch` writes the same bytes as before the packages were restructured (fetch side moved out of
 * stitch, stitcher settings, egress spec, run report). The store is ingested from the interop corpus, which
 * is deterministic (the simulator's own TLS randomness makes its stores differ run to run); the digests
 * were taken with the code before the move (commit b99ab18), one thread and two worker threads.
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
  "original.pcapng": "ffe2503296163999e0e036a7c3545a9c01eb0fe1e5cd712e5f62f301d4a8fe36",
  "cleartext.pcapng": "395a6ec35585f096c0e5bc03e91c3a2c93f7a4ca48d73bffb5b01a24202136e6",
  "both.pcapng": "1c72b73005deb61f5c409578848ed71b56684ea3d5456218ad524bc42404bfc2",
  "original-w2.pcap": "f78700660f4e4662646e10a23d2d13dac7a75109136f915879129ec8bc9b7f0b",
  "cleartext-w2.pcap": "38a3c40c272b09f4fe3a04c3b16b695aae65d96aff869a58a8e2090e82cf489f",
  "both-w2.pcap": "2b0605008d9939b62251a6b0048fe2fd4f4b9aa68123ecc1665c240a956a0c67",
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
