/** The `cloudtap` command as a user runs it: a child process, its output and exit status. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CORPUS = new URL("../../../../shared/testdata/tls/", import.meta.url).pathname;

function cloudtap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", MAIN, ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("cli - ingest and inspect", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-cli-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("ingests a capture with its key log, and inspect finds every connection and no problem", () => {
    const store = join(dir, "store");
    const ing = cloudtap(
      "ingest",
      "--pcap",
      join(CORPUS, "captures/hotplace__http2.pcapng"),
      "--keylog",
      join(CORPUS, "keys/hotplace__http.sslkeylog"),
      "--out",
      store,
      "--attr",
      "user=alice@example.com",
    );
    assert.equal(ing.status, 0, ing.stderr);
    assert.match(ing.stdout, /connections: tcp 16/);
    const ins = cloudtap("inspect", store, "--json");
    assert.equal(ins.status, 0, ins.stderr);
    const report = JSON.parse(ins.stdout);
    assert.equal(report.connections.total, 16);
    assert.deepEqual(report.problems, []);
    assert.equal(report.keyLogs.objects, 1);
    assert.equal(report.connectionList[0].attributes.user, "alice@example.com");
  });

  it("names the byte offset of an unreadable capture and exits 1", () => {
    const cut = join(dir, "cut.pcap");
    writeFileSync(cut, readFileSync(join(CORPUS, "captures/snet__tls1_2.pcap")).subarray(0, 3000));
    const r = cloudtap("ingest", "--pcap", cut, "--out", join(dir, "cut-store"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unreadable after \d+ packets: .* at offset \d+/);
  });

  it("reports a corrupt blob and exits 1", () => {
    const store = join(dir, "store2");
    assert.equal(
      cloudtap("ingest", "--pcap", join(CORPUS, "captures/snet__tls1_2.pcap"), "--out", store).status,
      0,
    );
    const blob = JSON.parse(cloudtap("inspect", store, "--json").stdout).blobList[0].key as string;
    const path = join(store, blob);
    const bytes = readFileSync(path);
    bytes[bytes.length - 200]! ^= 0xff;
    writeFileSync(path, bytes);
    const r = cloudtap("inspect", path);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /corrupt-frames/);
  });

  it("explains a bad command line with exit status 2", () => {
    assert.equal(cloudtap("nonsense").status, 2);
    const r = cloudtap("ingest", "--out", dir);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--pcap is required/);
    assert.equal(cloudtap("inspect", "--help").status, 0);
  });
});
