/**
 * Invariant 7 as a user meets it (issue 10): `cloudtap stitch` on the simulator's store (two tappers) and on
 * the interop corpus writes every output in strict time order (capinfos), for every variant: several --pcap
 * and --pcapng files at once, rotating files (each, and one after the other), one thread and --workers 2.
 * And a PCAP-over-IP reader (tshark) on a one-shot --variant both run gets every packet (the block policy).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CLOUDTAP_BIN, corpusDir } from "@cloudtap/test-harness";

const CORPUS = corpusDir();

function cloudtap(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** capinfos' packet count, strict time order, first and last packet time (epoch seconds). */
function capinfos(file: string): { packets: number; strict: boolean; first: number; last: number } {
  const out = execFileSync("capinfos", ["-M", "-c", "-o", "-S", "-a", "-e", file], { encoding: "utf8" });
  const field = (re: RegExp) => re.exec(out)?.[1] ?? "";
  return {
    packets: Number(field(/Number of packets:\s+(\d+)/)),
    strict: field(/Strict time order:\s+(\w+)/) === "True",
    first: Number(field(/First packet time:\s+([\d.]+)/)),
    last: Number(field(/Last packet time:\s+([\d.]+)/)),
  };
}

function assertOrdered(file: string, what: string): number {
  const info = capinfos(file);
  assert.ok(info.packets > 0, `${what}: packets`);
  assert.equal(info.strict, true, `${what}: strict time order`);
  return info.packets;
}

describe("cli - every capture output in time order (issue 10)", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-cli-order-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const stores: Record<string, string> = { simulator: join(dir, "sim"), corpus: join(dir, "corpus") };

  before(() => {
    cloudtap(
      "simulate",
      "--out",
      stores["simulator"]!,
      "--connections",
      "40",
      "--seed",
      "9",
      "--blob-size",
      "64KiB",
    );
    for (const [pcap, keylog] of [
      ["captures/hotplace__http2.pcapng", "keys/hotplace__http.sslkeylog"],
      ["captures/snet__tls1.3_aes128.pcap", "keys/snet__log.txt"],
      ["captures/hotplace__curl_http1_tls12.pcapng", "keys/hotplace__tls12.sslkeylog"],
    ] as const)
      cloudtap(
        "ingest",
        "--pcap",
        join(CORPUS, pcap),
        "--keylog",
        join(CORPUS, keylog),
        "--out",
        stores["corpus"]!,
      );
  });

  for (const source of ["simulator", "corpus"] as const) {
    for (const variant of ["original", "cleartext", "both"] as const) {
      it(`cli - ${source}, ${variant}: pcap x2 + pcapng x2 + rotating files, and --workers 2`, () => {
        const at = (name: string) => join(dir, `${source}-${variant}-${name}`);
        const rotated = at("rotated");
        cloudtap(
          "stitch",
          "--source",
          stores[source]!,
          "--variant",
          variant,
          "--workers",
          "1",
          "--pcap",
          at("a.pcap"),
          "--pcap",
          at("b.pcap"),
          "--pcapng",
          at("a.pcapng"),
          "--pcapng",
          at("b.pcapng"),
          "--out-dir",
          rotated,
          "--rotate-size",
          "256KiB",
        );
        const n = assertOrdered(at("a.pcap"), "a.pcap");
        for (const f of ["b.pcap", "a.pcapng", "b.pcapng"])
          assert.equal(assertOrdered(at(f), f), n, `${f}: as many packets as a.pcap`);
        const files = readdirSync(rotated)
          .filter((f) => !f.endsWith(".partial"))
          .sort();
        let inFiles = 0;
        let last = 0;
        for (const f of files) {
          const info = capinfos(join(rotated, f));
          assert.equal(info.strict, true, `rotating ${f}: strict time order`);
          assert.ok(info.first >= last, `rotating ${f} starts where the one before it ended`);
          last = info.last;
          inFiles += info.packets;
        }
        assert.equal(inFiles, n, "the rotating files hold every packet");
        cloudtap(
          "stitch",
          "--source",
          stores[source]!,
          "--variant",
          variant,
          "--workers",
          "2",
          "--pcap",
          at("w2.pcap"),
        );
        assert.equal(assertOrdered(at("w2.pcap"), "--workers 2"), n, "--workers 2: every packet");
      });
    }
  }

  it("cli - PCAP-over-IP reader on a one-shot --variant both run gets every packet, in time order", async () => {
    const reference = join(dir, "poip-reference.pcapng");
    const got = join(dir, "poip.pcapng");
    const child = spawn(
      process.execPath,
      [
        CLOUDTAP_BIN,
        "stitch",
        "--source",
        stores["simulator"]!,
        "--variant",
        "both",
        "--pcapng",
        reference,
        "--pcap-over-ip",
        "127.0.0.1:0",
        "--pcap-over-ip-clients",
        "1",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /waiting for 1 PCAP-over-IP client\(s\) on 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", () => reject(new Error(`stitch exited before waiting: ${stderr}`)));
    });
    const reader = spawn("tshark", ["-i", `TCP@127.0.0.1:${port}`, "-w", got], { stdio: "ignore" });
    const readerExited = new Promise<number | null>((resolve) => reader.on("exit", resolve));
    assert.equal(await exited, 0, stderr);
    assert.equal(await readerExited, 0);
    const want = assertOrdered(reference, "reference pcapng");
    assert.equal(assertOrdered(got, "PCAP-over-IP"), want, "the reader got every packet");
  });
});
