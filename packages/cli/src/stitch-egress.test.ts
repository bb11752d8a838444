/**
 * `cloudtap stitch` with several outputs at once, as a user runs it: a pcapng file, VXLAN to a kernel vxlan
 * device in a private network namespace (client addresses remapped by a policy file), PCAP-over-IP read by
 * tshark, and rotating files. Every output must carry exactly the simulator's bytes per connection.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTunnelLab, type TunnelLab } from "@cloudtap/egress/internal";
import { byEndpoints, CLOUDTAP_BIN, expertInfo, followStreams } from "@cloudtap/test-harness";

function cloudtap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface ManifestConnection {
  connId: string;
  transport: string;
  client: { address: string; port: number };
  server: { address: string; port: number };
  c2s: { raw: { length: number; sha256: string } };
  s2c: { raw: { length: number; sha256: string } };
}

/** Every TCP connection's bytes per direction in `file` equal the manifest's (client addresses mapped by `map`). */
function assertManifest(
  connections: readonly ManifestConnection[],
  file: string,
  what: string,
  map: (address: string) => string = (a) => a,
): void {
  const got = byEndpoints(followStreams(file));
  let checked = 0;
  for (const c of connections) {
    if (c.transport !== "tcp") continue;
    const cl = `${map(c.client.address)}|${c.client.port}`;
    const sv = `${c.server.address}|${c.server.port}`;
    assert.deepEqual(
      got.get(`${cl}>${sv}`),
      { bytes: c.c2s.raw.length, sha256: c.c2s.raw.sha256 },
      `${what}: ${c.connId} c2s`,
    );
    assert.deepEqual(
      got.get(`${sv}>${cl}`),
      { bytes: c.s2c.raw.length, sha256: c.s2c.raw.sha256 },
      `${what}: ${c.connId} s2c`,
    );
    checked++;
  }
  assert.ok(checked >= 10, `${what}: ${checked} TCP connections checked`);
}

describe("cli - stitch to several outputs at once", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-cli-egress-"));
  const store = join(dir, "store");
  let lab: TunnelLab;
  let connections: ManifestConnection[];

  before(() => {
    lab = createTunnelLab();
    const sim = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "24",
      "--seed",
      "8",
      "--blob-size",
      "48KiB",
      "--json",
    );
    assert.equal(sim.status, 0, sim.stderr);
    connections = (JSON.parse(sim.stdout) as { manifest: { connections: ManifestConnection[] } }).manifest
      .connections;
  });
  after(async () => {
    await lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("cli - pcapng + VXLAN (remapped, judged by the kernel) + PCAP-over-IP (tshark) + rotating files", async () => {
    lab.addVxlan("vx0", 42);
    const inner = await lab.capture("vx0", join(dir, "vxlan.pcap"));
    // The tunnel as it arrives (before decapsulation, whose GRO may merge inner segments in the capture).
    const outer = await lab.capture(lab.nsInterface, join(dir, "vxlan-outer.pcap"), ["udp", "port", "4789"]);
    const policy = join(dir, "policy.json");
    writeFileSync(
      policy,
      JSON.stringify({
        remap: { client: ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] },
        rules: [{ match: "proto=udp", action: "drop" }],
      }),
    );
    const remapLog = join(dir, "remap.jsonl");
    const args = [
      CLOUDTAP_BIN,
      "stitch",
      "--source",
      store,
      "--pcapng",
      join(dir, "all.pcapng"),
      "--vxlan",
      `${lab.nsAddress}:4789,vni=42`,
      "--policy",
      policy,
      "--remap-log",
      remapLog,
      "--pcap-over-ip",
      "127.0.0.1:0",
      "--pcap-over-ip-clients",
      "1",
      "--out-dir",
      join(dir, "rotated"),
      "--rotate-size",
      "2MiB",
      "--json",
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    // The command says where it waits for its PCAP-over-IP reader; tshark connects there.
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        const m = /waiting for 1 PCAP-over-IP client\(s\) on 127\.0\.0\.1:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      void exited.then((code) => reject(new Error(`cloudtap exited ${code} before listening: ${stderr}`)));
    });
    const poipFile = join(dir, "poip.pcap");
    const reader = spawn("tshark", ["-i", `TCP@127.0.0.1:${port}`, "-w", poipFile], { stdio: "ignore" });
    const readerExited = new Promise<number | null>((resolve) => reader.on("exit", resolve));
    const status = await exited;
    assert.equal(status, 0, stderr);
    assert.equal(await readerExited, 0, "tshark read the stream to its end");
    await inner.stop();
    await outer.stop();

    const summary = JSON.parse(stdout) as {
      encapsulationBytes: number;
      outputs: {
        kind: string;
        targets?: { frames: number; datagramsSent: number }[];
        filesClosed?: number;
      }[];
    };
    assert.equal(summary.encapsulationBytes, 50, "VXLAN over IPv4 inside a 1500 MTU");
    assert.deepEqual(
      summary.outputs.map((o) => o.kind),
      ["pcapng", "rotating", "pcap-over-ip", "tunnel"],
      "every output reported",
    );
    const tunnel = summary.outputs.find((o) => o.kind === "tunnel")!.targets![0]!;
    assert.equal(tunnel.datagramsSent, tunnel.frames, "every exported frame sent");

    assertManifest(connections, join(dir, "all.pcapng"), "pcapng file");
    assertManifest(connections, poipFile, "PCAP-over-IP");
    const rotated = readdirSync(join(dir, "rotated")).sort();
    assert.ok(rotated.length >= 2, `${rotated.length} rotated files`);
    for (const f of rotated)
      assert.ok(statSync(join(dir, "rotated", f)).size <= 2 * 1024 * 1024, `${f} within 2 MiB`);
    const merged = join(dir, "rotated.pcapng");
    execFileSync("mergecap", ["-a", "-w", merged, ...rotated.map((f) => join(dir, "rotated", f))]);
    assertManifest(connections, merged, "rotated files");

    // The tunnel: clients remapped as the log says, DNS (UDP) dropped by the policy's rule.
    const mapping = new Map<string, string>();
    for (const line of readFileSync(remapLog, "utf8").trim().split("\n")) {
      const m = JSON.parse(line) as { role: string; original: string; mapped: string };
      assert.equal(m.role, "client", "only clients are remapped");
      mapping.set(m.original, m.mapped);
    }
    assertManifest(
      connections,
      inner.file,
      "VXLAN (decapsulated by the kernel)",
      (a) => mapping.get(a) ?? `unmapped ${a}`,
    );
    // IP and TCP: the outer IPv4 header and the inner packets. Not UDP: the outer UDP checksum is the kernel's,
    // left for the (virtual) NIC to complete (checksum offload), so a capture shows it unfinished.
    const checksums = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"];
    const bad = expertInfo(outer.file, checksums).filter(
      (e) => e.group === "Checksum" || e.group === "Malformed",
    );
    assert.deepEqual(bad, [], "remapped frames carry valid checksums");
    // Summary lines carry TSval/TSecr now (the recorded timestamps option): more than the default 1 MiB.
    const innerPackets = execFileSync("tshark", ["-n", "-r", outer.file, "-Y", "tcp"], {
      encoding: "utf8",
      maxBuffer: 2 ** 28,
    });
    assert.ok(
      innerPackets.split("\n").length > 1000,
      "the checksums were checked on the tunnelled TCP packets",
    );
    const udp = execFileSync("tshark", ["-n", "-r", inner.file, "-Y", "udp"], { encoding: "utf8" });
    assert.equal(udp.trim(), "", "no UDP flow reached the tunnel");
  });

  it("cli - a command line without an output, or with a bad target, is refused with exit status 2", () => {
    const none = cloudtap("stitch", "--source", store);
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /give at least one output/);
    const bad = cloudtap("stitch", "--source", store, "--vxlan", "10.0.0.1:4789,vni=99999999");
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--vxlan 10\.0\.0\.1:4789,vni=99999999: vni/);
    const unknown = cloudtap("stitch", "--source", store, "--geneve", "10.0.0.1,colour=red");
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown setting "colour=red"/);
    const policy = join(dir, "remap-only.json");
    writeFileSync(
      policy,
      JSON.stringify({
        targets: [{ kind: "vxlan", address: "10.0.0.1" }],
        remap: { client: "100.64.0.0/10" },
      }),
    );
    const noLog = cloudtap("stitch", "--source", store, "--policy", policy);
    assert.equal(noLog.status, 2, noLog.stderr);
    assert.match(noLog.stderr, /--remap-log/);
  });
});
