/**
 * The measured loop of the egress benchmark (egress.bench.ts), also run as a child process per extra core:
 * `node --import tsx egress-bench-loop.ts <port> <seconds> <mechanism>` prints one JSON result line.
 *
 * VXLAN to a UDP receiver on loopback: 16 flows, each emitting runs of 32 frames as the stitcher emits a
 * data chunk, every frame copied into the datagram as a builder would write it. Datagrams are 1450 bytes of
 * UDP payload (8 of VXLAN, a 1442-byte inner frame), as `iperf3 -u -l 1450` sends.
 */
import { fileURLToPath } from "node:url";
import type { FrameSink } from "@cloudtap/packet";
import { createExportPolicy } from "./export-policy.js";
import { flowContext, frame } from "./test-frames.js";
import { TunnelOutput } from "./tunnel-output.js";
import { createUdpTransport } from "./udp-transport.js";

export const BENCH_DATAGRAM_BYTES = 1450;
const INNER_FRAME = BENCH_DATAGRAM_BYTES - 8;
const FLOWS = 16;
const RUN = 32;

export interface LoopResult {
  readonly mechanism: string;
  readonly packets: number;
  readonly bytes: number;
  readonly refused: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
}

export async function egressLoop(
  port: number,
  seconds: number,
  mechanism: "dgram" | "sendmmsg",
): Promise<LoopResult> {
  const policy = createExportPolicy({ targets: [{ kind: "vxlan", address: "127.0.0.1", port }] });
  const transport = await createUdpTransport({ targets: policy.targets, mechanism });
  const out = new TunnelOutput({ policy, transport });
  const flows: { sink: FrameSink; frame: Uint8Array }[] = [];
  for (let i = 0; i < FLOWS; i++) {
    const ctx = flowContext({ client: { address: `10.1.0.${i + 1}`, port: 40000 + i } });
    const f = frame({
      src: ctx.client.address,
      dst: ctx.server.address,
      sport: ctx.client.port,
      dport: ctx.server.port,
      payload: new Uint8Array(INNER_FRAME - 54).fill(i),
    });
    flows.push({ sink: out.forFlow(ctx), frame: f });
  }
  const ts = 1_764_064_800_000_000_000n;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let round = 0;
  while (performance.now() < end) {
    // 8 runs per drain: about 360 KB of datagrams, as a stitch job drains after each MiB of payload.
    for (let r = 0; r < 8; r++) {
      const f = flows[round++ % FLOWS]!;
      for (let i = 0; i < RUN; i++) {
        f.sink.begin(INNER_FRAME).set(f.frame);
        f.sink.commit(ts, i);
      }
    }
    for (const c of out.drain()) await out.write(c);
    // Let send completions (node:dgram) run, as the stitch job's awaits do.
    await new Promise((r) => setImmediate(r));
  }
  await out.close();
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const t = (
    out.report() as unknown as {
      targets: { datagramsSent: number; bytesSent: number; sendErrors: Record<string, number> }[];
    }
  ).targets[0]!;
  return {
    mechanism: transport.mechanism,
    packets: t.datagramsSent,
    bytes: t.bytesSent,
    refused: Object.values(t.sendErrors).reduce((a, b) => a + b, 0),
    seconds: elapsed,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, seconds, mechanism] = process.argv.slice(2);
  const r = await egressLoop(Number(port), Number(seconds), mechanism === "sendmmsg" ? "sendmmsg" : "dgram");
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
