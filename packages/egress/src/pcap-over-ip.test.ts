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
import { checkEgressSpec, EgressSpecError } from "./egress-spec.js";
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
      for (const c of server.drain()) await server.write(c);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  for (const c of server.flush()) await server.write(c);
}

/** A client that reads `bytesPerTick` every 2 ms: much slower than the writer, but it keeps reading. */
function slowReader(port: number, bytesPerTick: number): { socket: Socket; received: () => number } {
  const socket = connect(port, "127.0.0.1");
  let received = 0;
  socket.pause();
  const timer = setInterval(() => {
    for (let got = 0; got < bytesPerTick; ) {
      const b = socket.read() as Buffer | null;
      if (!b) break;
      got += b.length;
      received += b.length;
    }
  }, 2);
  socket.on("close", () => clearInterval(timer));
  return { socket, received: () => received };
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

  it("egress - block: a slow reader gets every packet (the writer waits for it), and so does tshark", async () => {
    const server = await createPcapOverIpServer({
      port: 0,
      slowClient: SlowClientPolicy.Block,
      maxClientBufferBytes: 256 * 1024,
      closeTimeoutMs: 20_000,
    });
    servers.push(server);
    const slow = slowReader(server.address.port, 256 * 1024);
    sockets.push(slow.socket);
    const reader = tsharkReader(server.address.port, join(dir, "block.pcap"));
    started.push(reader.child);
    await server.waitForClients(2, { timeoutMs: 20_000 });
    const packets = 8000;
    await run(server, packets, 1400);
    const report = server.report() as unknown as {
      droppedPackets: number;
      blockedWrites: number;
      clientsDroppedBlocked: number;
    };
    assert.equal(report.droppedPackets, 0);
    assert.equal(report.clientsDroppedBlocked, 0);
    assert.ok(report.blockedWrites > 0, "the writer waited for the slow reader");
    await server.close();
    await reader.exited;
    const seqs = await sequenceNumbers(reader.file);
    assert.equal(seqs.length, packets, "tshark captured every packet");
    assert.ok(seqs.every((s, i) => s === i));
    // The slow reader got the header and every record (16-byte header + frame per packet).
    await new Promise((r) => setTimeout(r, 50));
    const frame = 14 + 20 + 20 + 1400;
    assert.equal(slow.received(), 24 + packets * (16 + frame));
  });

  it("egress - block: a reader that stopped is dropped after the timeout and counted; the others get all", async () => {
    const server = await createPcapOverIpServer({
      port: 0,
      slowClient: SlowClientPolicy.Block,
      maxClientBufferBytes: 64 * 1024,
      blockTimeoutMs: 300,
      closeTimeoutMs: 500,
    });
    servers.push(server);
    const stalled = connect(server.address.port, "127.0.0.1");
    sockets.push(stalled);
    await once(stalled, "connect");
    stalled.pause();
    const reader = tsharkReader(server.address.port, join(dir, "block-stalled.pcap"));
    started.push(reader.child);
    await server.waitForClients(2, { timeoutMs: 20_000 });
    const packets = 20_000;
    await run(server, packets, 1400);
    const report = server.report() as unknown as { clientsDroppedBlocked: number };
    assert.equal(report.clientsDroppedBlocked, 1, "the stalled client was dropped after the timeout");
    await server.close();
    await reader.exited;
    assert.equal((await sequenceNumbers(reader.file)).length, packets, "tshark captured every packet");
  });

  it("egress - waiting for more clients than the server accepts is refused at once, in the spec and the server", async () => {
    assert.throws(
      () =>
        checkEgressSpec({
          embedKeys: false,
          pcapOverIp: { host: "127.0.0.1", port: 0, slowClient: SlowClientPolicy.Drop, waitForClients: 17 },
        }),
      (err: unknown) =>
        err instanceof EgressSpecError &&
        /pcapOverIp\.waitForClients.*at most 16, the server's client limit/.test(err.message),
    );
    const server = await createPcapOverIpServer({ port: 0, maxClients: 2, closeTimeoutMs: 500 });
    try {
      await assert.rejects(
        server.waitForClients(3, { timeoutMs: 60_000 }),
        /cannot wait for 3 clients: the server accepts at most 2/,
      );
    } finally {
      await server.close();
    }
  });

  it("egress - nanosecond pcap on the stream: magic a1b23c4d, nanoseconds kept", async () => {
    const server = await createPcapOverIpServer({ port: 0, resolution: "nanosecond", closeTimeoutMs: 500 });
    servers.push(server);
    const socket = connect(server.address.port, "127.0.0.1");
    sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    const closed = once(socket, "close");
    await server.waitForClients(1, { timeoutMs: 20_000 });
    const [f] = framesOf(flowContext(), new Uint8Array(100));
    server.begin(f.length).set(f);
    server.commit(T0 + 123_456_789n);
    for (const c of server.flush()) await server.write(c);
    await server.close();
    await closed;
    const bytes = Buffer.concat(chunks);
    assert.equal(bytes.readUInt32LE(0), 0xa1b23c4d);
    const items = [];
    for await (const item of readCapture(new Uint8Array(bytes))) if (item.type === "packet") items.push(item);
    assert.equal(items.length, 1);
    assert.equal(items[0]!.timestampNs, T0 + 123_456_789n);
  });

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
