/**
 * VXLAN egress rate on one core, next to `iperf3 -u -b 0 -l 1450` (a C sender, one sendto per packet) and
 * `tcpreplay --topspeed` (frames straight onto a veth) on the same machine, in the same run. Datagrams go to
 * a UDP receiver on loopback that reads and discards them (like iperf3's server; what it cannot take the
 * kernel drops); rates are what left the sender. Then several egress processes at once, one per core.
 *
 * Target (issue 6): at least 90 % of iperf3's packets/s. node:dgram costs about 3.5 us per datagram, so
 * that needs the native sendmmsg/GSO path (built at install when a compiler is there).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCaptureEncoder } from "./capture-format.js";
import { BENCH_DATAGRAM_BYTES, egressLoop, type LoopResult } from "./egress-bench-loop.js";
import { loadNativeSender } from "./native-sender.js";
import { flowContext, framesOf } from "./test-frames.js";
import { createTunnelLab } from "./tunnel-lab.js";

export interface EgressBenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly detail?: string;
}

const SECONDS = Number(process.env["EGRESS_BENCH_SECONDS"] ?? 3);

/**
 * A UDP receiver on loopback in its own process that reads and discards every datagram it can, as iperf3's
 * server does for iperf3 (so both senders pay the same wake-ups and queueing on delivery).
 */
async function startSink(): Promise<{ port: number; stop(): void }> {
  const script = [
    "import socket",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
    "s.bind(('127.0.0.1', 0))",
    "print(s.getsockname()[1], flush=True)",
    "b = bytearray(65536)",
    "while True: s.recv_into(b)",
  ].join("\n");
  const child = spawn("python3", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.on("error", (err) =>
      reject(new Error(`python3 is needed for the benchmark's receiver: ${err.message}`)),
    );
    child.stdout.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { port, stop: () => child.kill() };
}

function iperf3(seconds: number): { pps: number; gbps: number } {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const server: ChildProcess = spawn("iperf3", ["-s", "-1", "-p", port], { stdio: "ignore" });
  try {
    // The server needs a moment to listen; the client retries its control connection for a while.
    for (let attempt = 0; ; attempt++) {
      const r = spawnSync(
        "iperf3",
        [
          "-c",
          "127.0.0.1",
          "-p",
          port,
          "-u",
          "-b",
          "0",
          "-l",
          String(BENCH_DATAGRAM_BYTES),
          "-t",
          String(seconds),
          "--json",
        ],
        {
          encoding: "utf8",
        },
      );
      if (r.error) throw new Error(`iperf3 is not installed (apt-get install iperf3): ${r.error.message}`);
      const json = JSON.parse(r.stdout || "{}") as {
        end?: { sum?: { packets: number; seconds: number; bytes: number } };
        error?: string;
      };
      const sum = json.end?.sum;
      if (sum) return { pps: sum.packets / sum.seconds, gbps: (sum.bytes * 8) / sum.seconds / 1e9 };
      if (attempt >= 20) throw new Error(`iperf3 failed: ${json.error ?? r.stderr}`);
      execFileSync("sleep", ["0.1"]);
    }
  } finally {
    server.kill();
  }
}

/** tcpreplay --topspeed of 1450-byte frames onto one end of a veth pair in a private namespace. */
function tcpreplay(dir: string): { pps: number; gbps: number } | undefined {
  if (spawnSync("tcpreplay", ["--version"]).error) return undefined;
  const encoder = createCaptureEncoder({ format: "pcap" });
  const [f] = framesOf(flowContext(), new Uint8Array(BENCH_DATAGRAM_BYTES - 54));
  for (let i = 0; i < 50_000; i++) {
    encoder.begin(f.length).set(f);
    encoder.commit(1_764_064_800_000_000_000n, i * 1000);
  }
  const file = join(dir, "replay.pcap");
  writeFileSync(file, Buffer.concat(encoder.flush()));
  const lab = createTunnelLab();
  try {
    const out = execFileSync(
      "ip",
      ["netns", "exec", lab.ns, "tcpreplay", "--topspeed", "--loop", "10", "-i", lab.nsInterface, file],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const m = /Rated:\s+([\d.]+) Bps,\s+([\d.]+) Mbps,\s+([\d.]+) pps/.exec(out);
    if (!m) throw new Error(`unexpected tcpreplay output: ${out}`);
    return { pps: Number(m[3]), gbps: Number(m[2]) / 1000 };
  } finally {
    void lab.destroy();
  }
}

function loopInChild(port: number, seconds: number, mechanism: string): Promise<LoopResult> {
  const file = fileURLToPath(new URL("./egress-bench-loop.ts", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", file, String(port), String(seconds), mechanism],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out) as LoopResult) : reject(new Error(`bench child exited ${code}`)),
    );
  });
}

const rate = (r: LoopResult) => ({ pps: r.packets / r.seconds, gbps: (r.bytes * 8) / r.seconds / 1e9 });

export async function benchEgress(): Promise<EgressBenchResult[]> {
  const results: EgressBenchResult[] = [];
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-egress-bench-"));
  const sink = await startSink();
  try {
    const ip = iperf3(SECONDS);
    results.push({
      name: "iperf3 -u -b 0 -l 1450, loopback",
      value: ip.pps,
      unit: "packets/s",
      detail: `${ip.gbps.toFixed(2)} Gbit/s`,
    });
    const native = loadNativeSender();
    const mechanisms: ("dgram" | "sendmmsg")[] = native.sender ? ["dgram", "sendmmsg"] : ["dgram"];
    let best: { mechanism: string; pps: number } = { mechanism: "dgram", pps: 0 };
    for (const m of mechanisms) {
      const r = await egressLoop(sink.port, SECONDS, m);
      const { pps, gbps } = rate(r);
      if (pps > best.pps) best = { mechanism: m, pps };
      results.push({
        name: `VXLAN egress, one core (${r.mechanism})`,
        value: pps,
        unit: "packets/s",
        detail:
          `${gbps.toFixed(2)} Gbit/s, ${((100 * pps) / ip.pps).toFixed(0)} % of iperf3, ` +
          `${((1e6 * r.cpuSeconds) / Math.max(1, r.packets)).toFixed(2)} us CPU per datagram` +
          (m === "sendmmsg" ? `, GSO ${native.sender?.gso() ? "on" : "off"}` : ""),
      });
    }
    if (!native.sender) {
      results.push({
        name: "VXLAN egress, native sendmmsg path",
        value: 0,
        unit: "packets/s",
        detail: native.reason,
      });
    }
    const workers = Math.max(2, Math.min(4, availableParallelism()));
    const many = await Promise.all(
      Array.from({ length: workers }, () => loopInChild(sink.port, SECONDS, best.mechanism)),
    );
    const total = many.reduce((n, r) => n + rate(r).pps, 0);
    const totalGbps = many.reduce((n, r) => n + rate(r).gbps, 0);
    results.push({
      name: `VXLAN egress, ${workers} processes (${best.mechanism})`,
      value: total,
      unit: "packets/s",
      detail: `${totalGbps.toFixed(2)} Gbit/s, ${(total / best.pps).toFixed(2)} x one process, ${availableParallelism()} CPUs`,
    });
    const replay = tcpreplay(dir);
    results.push(
      replay
        ? {
            name: "tcpreplay --topspeed, 1450-byte frames, veth",
            value: replay.pps,
            unit: "packets/s",
            detail: `${replay.gbps.toFixed(2)} Gbit/s`,
          }
        : { name: "tcpreplay --topspeed", value: 0, unit: "packets/s", detail: "tcpreplay is not installed" },
    );
  } finally {
    sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const r of await benchEgress()) {
    process.stdout.write(
      `${r.name.padEnd(48)} ${r.value.toFixed(0).padStart(10)} ${r.unit}${r.detail ? `  (${r.detail})` : ""}\n`,
    );
  }
}
