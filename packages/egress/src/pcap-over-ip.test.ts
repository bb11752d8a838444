/**
 * PCAP-over-IP judged by tshark reading the stream (`tshark -i TCP@127.0.0.1:<port>`), with a client that
 * stops reading beside it.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readCapture } from "@cloudtap/pcap";
import { createPcapOverIpServer, type PcapOverIpServer, SlowClientPolicy } from "./pcap-over-ip.js";
import { flowContext, framesOf } from "./test-frames.js";

const T0 = 1_764_064_800_000_000_000n;

interface Reader {
  readonly child: ChildProcess;
  readonly file: string;
  readonly exited: Promise<number | null>;
}

function tsharkReader(port: number, file: string): Reader {
  const child = spawn("tshark", ["-i", `TCP@127.0.0.1:${port}`, "-w", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", (err) =>
      reject(new Error(`tshark could not start (run ./scripts/bootstrap.sh): ${err.message}`)),
    );
    child.on("exit", (code) =>
      code === 0 ? resolve(code) : reject(new Error(`tshark exited ${code}: ${stderr}`)),
    );
  });
  return { child, file, exited };
}

/** Packets with a sequence number in their payload, so the reader's order and completeness can be checked. */
async function run(server: PcapOverIpServer, packets: number, payloadBytes: number): Promise<void> {
  const flow = flowContext();
  for (let i = 0; i < packets; i++) {
    const payload = new Uint8Array(payloadBytes);
    new DataView(payload.buffer).setUint32(0, i);
    const [f] = framesOf(flow, payload);
    server.begin(f.length).set(f);
    server.commit(T0 + BigInt(i) * 1000n);
    // As the stitch job does: drain after each slice, and let the event loop run.
    if (i % 500 === 499) {
      for (const c of server.drain()) server.write(c);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  for (const c of server.flush()) server.write(c);
}

async function sequenceNumbers(file: string): Promise<number[]> {
  const out: number[] = [];
  for await (const item of readCapture(readFileSync(file))) {
    if (item.type !== "packet") continue;
    const d = item.data;
    out.push(new DataView(d.buffer, d.byteOffset + d.length - 1400).getUint32(0));
  }
  return out;
}

describe("egress - PCAP-over-IP", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-poip-"));
  const started: ChildProcess[] = [];
  const sockets: Socket[] = [];
  const servers: PcapOverIpServer[] = [];
  // Everything is stopped even when a test fails, so that nothing keeps the test process alive.
  after(async () => {
    for (const c of started) if (c.exitCode === null) c.kill();
    for (const s of sockets) s.destroy();
    for (const s of servers) await s.abort();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const policy of [SlowClientPolicy.Drop, SlowClientPolicy.Disconnect]) {
    it(`egress - tshark sees every packet while a client that stopped reading is bounded (${policy})`, async () => {
      const server = await createPcapOverIpServer({
        port: 0,
        slowClient: policy,
        maxClientBufferBytes: 32 * 1024 * 1024,
        closeTimeoutMs: 500,
      });
      servers.push(server);
      // The stalled client: connects, then never reads.
      const stalled = connect(server.address.port, "127.0.0.1");
      sockets.push(stalled);
      await once(stalled, "connect");
      stalled.pause();
      const reader = tsharkReader(server.address.port, join(dir, `${policy}.pcap`));
      started.push(reader.child);
      await server.waitForClients(2, { timeoutMs: 20_000 });
      const packets = 60_000; // about 86 MB: far more than the stalled client's socket buffers and its cap
      const t = performance.now();
      await run(server, packets, 1400);
      const ms = performance.now() - t;
      const report = server.report() as unknown as {
        droppedPackets: number;
        clientsDisconnectedSlow: number;
        clients: { packets: number; droppedPackets: number; buffered: number; connected: boolean }[];
      };
      if (policy === SlowClientPolicy.Drop) {
        const slow = report.clients.find((c) => c.droppedPackets > 0);
        assert.ok(slow, `the stalled client lost chunks: ${JSON.stringify(report.clients)}`);
        assert.ok(slow.buffered <= 32 * 1024 * 1024, `its buffer stayed within the cap: ${slow.buffered}`);
        assert.equal(slow.packets + slow.droppedPackets, packets, "every packet sent or counted as dropped");
      } else {
        assert.equal(report.clientsDisconnectedSlow, 1, "the stalled client was disconnected");
      }
      await server.close();
      await reader.exited;
      const seqs = await sequenceNumbers(reader.file);
      assert.equal(seqs.length, packets, "tshark captured every packet");
      assert.ok(
        seqs.every((s, i) => s === i),
        "in order",
      );
      assert.ok(ms < 60_000, `the run took ${ms.toFixed(0)} ms`);
    });
  }

  it("egress - clients that connect mid-run start at a record boundary; without clients packets are counted", async () => {
    const server = await createPcapOverIpServer({ port: 0, closeTimeoutMs: 500 });
    servers.push(server);
    await run(server, 1000, 1400);
    const reader = tsharkReader(server.address.port, join(dir, "late.pcap"));
    started.push(reader.child);
    await server.waitForClients(1, { timeoutMs: 20_000 });
    await run(server, 1000, 1400);
    await server.close();
    await reader.exited;
    assert.equal((await sequenceNumbers(reader.file)).length, 1000, "the packets after it connected");
    assert.equal(
      (server.report() as unknown as { packetsWithoutClients: number }).packetsWithoutClients,
      1000,
      "counted",
    );
  });
});
