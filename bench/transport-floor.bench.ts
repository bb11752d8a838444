/**
 * What the mesh's two transports cost alone (`pnpm bench transport-floor`): the same bytes, in the mesh's
 * message sizes, through each hop with no cloudtap work at either end, each end its own OS process.
 *
 * - JetStream: a publisher sends 512 KiB messages (with message ids, 32 awaiting their acks) to a file-storage
 *   stream of a real nats-server; a consumer pulls them (64 at a time, as a stitcher's shard) and acks each.
 *   The fetcher -> nats-server -> stitcher hop.
 * - gRPC: a client sends 512 KiB batches over the MirrorService stream, with mutual TLS, through
 *   `grpcMirrorLink` (in-flight window, batch encoding in the frames' headroom) to a server that acks each
 *   one as it comes. The stitcher -> mirror-egress hop.
 *
 * CPU per MiB of each process (user + system, every thread, from `process.cpuUsage` and /proc) over the
 * transfer. The sum is a floor under the mesh's CPU per MiB on the same machine: the mesh moves each byte
 * through both hops and does its own work besides. `TRANSPORT_FLOOR_BYTES` (default 512 MiB).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  chunkSubject,
  connectBus,
  consumeMessages,
  ensureConsumer,
  ensureStreams,
  StreamName,
} from "@cloudtap/bus";
import { grpcMirrorLink } from "@cloudtap/mesh";
import { MirrorService, type StreamPacketsResponse } from "@cloudtap/proto";
import {
  clientCredentials,
  createClient,
  createPki,
  createRpcServer,
  expectServerIdentity,
  registerService,
  ServiceIdentity,
  serverCredentials,
} from "@cloudtap/rpc";
import { startNatsServer } from "@cloudtap/test-harness";
import type { BenchResult } from "./bench-result.js";
import { processCpuSeconds } from "./measure.js";
import { scratchDir } from "./scratch.js";

const TOTAL = Number(process.env["TRANSPORT_FLOOR_BYTES"] ?? 512 * 1024 * 1024);
/** The fetcher's batch target (`DEFAULT_BATCH_TARGET_BYTES`): a stitcher sends one mirror batch per message. */
const MESSAGE = 512 * 1024;
const COUNT = Math.ceil(TOTAL / MESSAGE);
const STREAM = StreamName.Chunks;
const SUBJECT = chunkSubject("floor", 0);
const HEADROOM = 64;
const SELF = new URL(import.meta.url).pathname;

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function payload(): Uint8Array {
  const b = new Uint8Array(HEADROOM + MESSAGE);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 17) & 0xff;
  return b;
}

interface RoleReport {
  readonly cpuSeconds: number;
  readonly seconds: number;
}

/** The child's side: runs one role and prints its report as the last line. */
async function role(name: string, arg: string): Promise<void> {
  let report: RoleReport;
  if (name === "nats-pub") {
    const bus = await connectBus({ servers: arg, name: "floor-pub" });
    const body = payload().subarray(HEADROOM);
    const c0 = cpuNow();
    const t0 = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < COUNT; i++) {
      const p = bus.js.publish(SUBJECT, body, { msgID: `m-${i}` }).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 32) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    report = { cpuSeconds: cpuNow() - c0, seconds: (performance.now() - t0) / 1000 };
    await bus.close();
  } else if (name === "nats-sub") {
    const bus = await connectBus({ servers: arg, name: "floor-sub" });
    const stream = await consumeMessages(bus.js, STREAM, "floor", { maxMessages: 64 });
    let got = 0;
    let c0 = 0;
    let t0 = 0;
    process.stdout.write("ready\n");
    for await (const m of stream) {
      if (got === 0) {
        c0 = cpuNow();
        t0 = performance.now();
      }
      if (m.data.length !== MESSAGE) throw new Error(`message of ${m.data.length} bytes`);
      m.ack();
      if (++got === COUNT) break;
    }
    report = { cpuSeconds: cpuNow() - c0, seconds: (performance.now() - t0) / 1000 };
    await stream.stop();
    await bus.close();
  } else if (name === "grpc-server") {
    const server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: await serverCredentials(arg, ServiceIdentity.MirrorEgress),
      services: [
        registerService(
          MirrorService,
          {
            async *streamPackets(requests) {
              for await (const r of requests) {
                const m = r.message;
                if (m.case === "open") {
                  yield {
                    message: {
                      case: "opened",
                      value: { encapsulationBytes: 0, embedsKeys: false, maxInFlight: 8 },
                    },
                  } as StreamPacketsResponse;
                } else if (m.case === "batch") {
                  if (m.value.frames.length !== MESSAGE) throw new Error("short batch");
                  yield { message: { case: "ack", value: { seq: m.value.seq } } } as StreamPacketsResponse;
                }
              }
            },
          },
          { allowedIdentities: [ServiceIdentity.Stitcher] },
        ),
      ],
    });
    process.stdout.write(`port ${server.port}\n`);
    // Ends when the orchestrator stops it; its CPU is read from /proc.
    await new Promise(() => {});
    return;
  } else if (name === "grpc-client") {
    const [dir, port] = arg.split(",");
    const client = createClient(MirrorService, `127.0.0.1:${port}`, {
      credentials: await clientCredentials(dir!, ServiceIdentity.Stitcher),
      channelOptions: expectServerIdentity(ServiceIdentity.MirrorEgress),
    });
    const link = grpcMirrorLink({ client, stitcherId: "floor", mtu: 1500 });
    await link.open();
    const c0 = cpuNow();
    const t0 = performance.now();
    const acks: Promise<void>[] = [];
    const template = payload();
    for (let i = 0; i < COUNT; i++) {
      // A fresh batch each time, headroom first, as a stitcher's recorder hands them over.
      const b = new Uint8Array(template.length);
      b.set(template);
      acks.push(link.send(BigInt(i + 1), b.subarray(HEADROOM), undefined, HEADROOM));
      if (acks.length >= 8) await acks.shift();
    }
    await Promise.all(acks);
    report = { cpuSeconds: cpuNow() - c0, seconds: (performance.now() - t0) / 1000 };
    await link.close();
  } else {
    throw new Error(`unknown role ${name}`);
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

function start(name: string, arg: string) {
  const child = spawn(process.execPath, ["--import", "tsx", SELF, name, arg], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  const lines: ((line: string) => void)[] = [];
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => {
    out += d;
    for (const l of d.split("\n")) if (l) for (const w of lines) w(l);
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    line: (test: (l: string) => boolean) =>
      new Promise<string>((resolve, reject) => {
        const hit = out.split("\n").find(test);
        if (hit) return resolve(hit);
        lines.push((l) => test(l) && resolve(l));
        void exited.then((code) => reject(new Error(`${name} exited ${code} before its line`)));
      }),
    report: async (): Promise<RoleReport> => {
      const code = await exited;
      if (code !== 0) throw new Error(`${name} exited ${code}`);
      return JSON.parse(out.trim().split("\n").at(-1)!) as RoleReport;
    },
  };
}

export async function benchTransportFloor(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-floor-"));
  const mib = (COUNT * MESSAGE) / 2 ** 20;
  const perMib = (s: number) => (s * 1000) / mib;
  const results: BenchResult[] = [];
  const children: ChildProcess[] = [];
  const nats = await startNatsServer({ storeDir: join(dir, "js") });
  try {
    const bus = await connectBus({ servers: nats.url, name: "floor-setup" });
    // The mesh's own streams (work-queue retention, file storage, message ids de-duplicated).
    await ensureStreams(bus.jsm);
    await ensureConsumer(bus.jsm, STREAM, "floor", { filterSubject: SUBJECT });
    await bus.close();
    const sub = start("nats-sub", nats.url);
    children.push(sub.child);
    await sub.line((l) => l === "ready");
    const server0 = processCpuSeconds(nats.pid!);
    const pub = start("nats-pub", nats.url);
    children.push(pub.child);
    const [p, s] = [await pub.report(), await sub.report()];
    const server = processCpuSeconds(nats.pid!) - server0;
    const seconds = Math.max(p.seconds, s.seconds);
    results.push({
      name: "JetStream hop (publish -> file stream -> pull, ack)",
      value: perMib(p.cpuSeconds + server + s.cpuSeconds),
      unit: "ms/MiB",
      detail: `publisher ${perMib(p.cpuSeconds).toFixed(1)}, nats-server ${perMib(server).toFixed(1)}, consumer ${perMib(s.cpuSeconds).toFixed(1)} ms/MiB; ${(mib / seconds).toFixed(0)} MiB/s, ${mib} MiB in 512 KiB messages`,
    });
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await nats.stop();
  }

  const pki = join(dir, "pki");
  await createPki(pki);
  const server = start("grpc-server", pki);
  try {
    const port = (await server.line((l) => l.startsWith("port "))).slice(5);
    const server0 = processCpuSeconds(server.child.pid!);
    const client = start("grpc-client", `${pki},${port}`);
    children.push(client.child);
    const c = await client.report();
    const s = processCpuSeconds(server.child.pid!) - server0;
    results.push({
      name: "gRPC hop (MirrorService stream, mutual TLS)",
      value: perMib(c.cpuSeconds + s),
      unit: "ms/MiB",
      detail: `client ${perMib(c.cpuSeconds).toFixed(1)}, server ${perMib(s).toFixed(1)} ms/MiB (its whole process over the transfer); ${(mib / c.seconds).toFixed(0)} MiB/s, ${mib} MiB in 512 KiB batches`,
    });
  } finally {
    for (const c of [...children, server.child]) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

// Run as a child (`<this file> <role> <arg>`): one end of a hop.
if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1] && process.argv[2])
  await role(process.argv[2], process.argv[3] ?? "");
