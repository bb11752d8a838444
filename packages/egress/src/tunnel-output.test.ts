import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodePacket, type FrameSink } from "@cloudtap/packet";
import { createExportPolicy, type ExportPolicySpec } from "./export-policy.js";
import { flowHash } from "./flow-hash.js";
import { GeneveOptionType, parseGeneve } from "./geneve.js";
import { flowContext, framesOf, ManualClock, MemoryTransport } from "./test-frames.js";
import { TunnelOutput } from "./tunnel-output.js";
import { parseVxlan } from "./vxlan.js";

const T0 = 1_764_028_800_000_000_000n;

function output(spec: ExportPolicySpec, transport = new MemoryTransport(), clock = new ManualClock()) {
  const out = new TunnelOutput({
    policy: createExportPolicy(spec),
    transport,
    clock,
    batchBytes: 128 * 1024,
  });
  return { out, transport, clock };
}

function put(sink: FrameSink, frame: Uint8Array, ts = T0, offsetNs = 0): void {
  sink.begin(frame.length).set(frame);
  sink.commit(ts, offsetNs);
}

async function pass(out: TunnelOutput): Promise<void> {
  for (const c of out.drain()) await out.write(c);
}

describe("egress - tunnel output", () => {
  it("egress - VXLAN: header + the frame as built, both directions through one source-port slot", async () => {
    const { out, transport } = output({ targets: [{ kind: "vxlan", address: "10.0.0.1", vni: 42 }] });
    const flow = flowContext();
    const sink = out.forFlow(flow);
    const [c2s, s2c] = framesOf(flow, new Uint8Array(100).fill(1));
    put(sink, c2s);
    put(sink, s2c);
    await pass(out);
    assert.equal(transport.sent.length, 2, "two datagrams");
    const slot = flowHash(flow) % transport.slots;
    for (const [i, want] of [c2s, s2c].entries()) {
      const d = transport.sent[i]!;
      assert.equal(d.slot, slot, `datagram ${i}: the flow's slot`);
      const v = parseVxlan(d.bytes);
      assert.equal(v?.vni, 42, `datagram ${i}: VNI`);
      assert.deepEqual(v?.frame, want, `datagram ${i}: inner frame`);
    }
    const r = out.report() as unknown as { targets: { frames: number; datagramsSent: number }[] };
    assert.equal(r.targets[0]!.frames, 2, "frames counted");
    assert.equal(r.targets[0]!.datagramsSent, 2, "sent counted");
    await out.close();
  });

  it("egress - copies to every target of a rule; GENEVE carries the flow's options", async () => {
    const { out, transport } = output({
      targets: [
        { name: "v", kind: "vxlan", address: "10.0.0.1" },
        { name: "g", kind: "geneve", address: "10.0.0.2", vni: 7 },
      ],
    });
    const flow = flowContext({ variant: "cleartext" });
    const sink = out.forFlow(flow);
    const [c2s] = framesOf(flow, new Uint8Array(10));
    put(sink, c2s);
    await pass(out);
    const byTarget = new Map(transport.sent.map((d) => [d.target, d.bytes]));
    assert.deepEqual(parseVxlan(byTarget.get(0)!)?.frame, c2s, "VXLAN copy");
    assert.equal(parseVxlan(byTarget.get(0)!)?.vni, 2, "policy default cleartext VNI");
    const g = parseGeneve(byTarget.get(1)!);
    assert.equal(g?.vni, 8, "GENEVE cleartext VNI = vni + 1");
    assert.deepEqual(g?.payload, c2s, "GENEVE copy");
    assert.deepEqual(
      g?.options.map((o) => o.type),
      [
        GeneveOptionType["connection-id"],
        GeneveOptionType.variant,
        GeneveOptionType.user,
        GeneveOptionType.tenant,
        GeneveOptionType.app,
      ],
      "options",
    );
  });

  it("egress - oversize frames are truncated to the snap length or dropped, and counted", async () => {
    const { out, transport } = output({
      targets: [
        { name: "cut", kind: "vxlan", address: "10.0.0.1", mtu: 600 },
        { name: "snap", kind: "vxlan", address: "10.0.0.2", mtu: 600, snapLength: 200 },
        { name: "drop", kind: "vxlan", address: "10.0.0.3", mtu: 600, oversize: "drop" },
      ],
    });
    const flow = flowContext();
    const sink = out.forFlow(flow);
    const [big] = framesOf(flow, new Uint8Array(1000).fill(9));
    const [small] = framesOf(flow, new Uint8Array(10));
    put(sink, big);
    put(sink, small);
    await pass(out);
    const inner = (t: number) =>
      transport.sent.filter((d) => d.target === t).map((d) => parseVxlan(d.bytes)!.frame);
    assert.deepEqual(
      inner(0).map((f) => f.length),
      [600 - 20 - 8 - 8, small.length],
      "cut to what fits the MTU",
    );
    assert.deepEqual(inner(0)[0], big.subarray(0, 564), "the frame's first bytes");
    assert.deepEqual(
      inner(1).map((f) => f.length),
      [200, small.length],
      "cut to the snap length",
    );
    assert.deepEqual(
      inner(2).map((f) => f.length),
      [small.length],
      "dropped",
    );
    const r = out.report() as unknown as { targets: { truncated: number; oversizeDropped: number }[] };
    assert.deepEqual(
      r.targets.map((t) => [t.truncated, t.oversizeDropped]),
      [
        [1, 0],
        [1, 0],
        [0, 1],
      ],
      "counted per target",
    );
  });

  it("egress - a target's queue is bounded: frames beyond it are dropped and counted, memory stays put", async () => {
    const { out, transport } = output({
      targets: [{ kind: "vxlan", address: "10.0.0.1", maxQueueBytes: 1024 * 1024 }],
    });
    const sink = out.forFlow(flowContext());
    const [f] = framesOf(flowContext(), new Uint8Array(1400));
    const n = 2000; // about 2.9 MB of datagrams, never drained
    for (let i = 0; i < n; i++) put(sink, f);
    const r = out.report() as unknown as { targets: { queueDropped: number; datagramsBuilt: number }[] };
    const built = r.targets[0]!.datagramsBuilt;
    assert.ok(built * (f.length + 8) <= 1024 * 1024, `${built} datagrams held, within the cap`);
    assert.equal(built + r.targets[0]!.queueDropped, n, "every frame is built or counted as dropped");
    await pass(out);
    assert.equal(transport.sent.length, built, "what was held is sent");
    put(sink, f);
    await pass(out);
    assert.equal(transport.sent.length, built + 1, "room again once sent");
  });

  it("egress - packets/s limit, wait: sent at the rate as the clock moves; drop: the excess is counted", async () => {
    const clock = new ManualClock();
    const { out, transport } = output(
      { targets: [{ kind: "vxlan", address: "10.0.0.1", maxPacketsPerSecond: 1000 }] },
      new MemoryTransport(),
      clock,
    );
    const sink = out.forFlow(flowContext());
    const [f] = framesOf(flowContext());
    for (let i = 0; i < 100; i++) put(sink, f);
    const writes = out.drain().map((c) => out.write(c));
    const burst = transport.sent.length;
    assert.ok(burst >= 10 && burst < 20, `a burst of ${burst} (10 ms worth) goes at once`);
    clock.advance(50);
    const after50 = transport.sent.length;
    assert.ok(Math.abs(after50 - burst - 50) <= 2, `50 ms later: ${after50 - burst} more`);
    clock.advance(100);
    await Promise.all(writes);
    assert.equal(transport.sent.length, 100, "all sent in the end");

    const d = output(
      { targets: [{ kind: "vxlan", address: "10.0.0.1", maxPacketsPerSecond: 1000, overLimit: "drop" }] },
      new MemoryTransport(),
      new ManualClock(),
    );
    const s2 = d.out.forFlow(flowContext());
    for (let i = 0; i < 100; i++) put(s2, f);
    await pass(d.out);
    const r = d.out.report() as unknown as { targets: { rateLimitDropped: number }[] };
    assert.equal(d.transport.sent.length + r.targets[0]!.rateLimitDropped, 100, "sent + dropped = all");
    assert.ok(
      r.targets[0]!.rateLimitDropped >= 80,
      `${r.targets[0]!.rateLimitDropped} dropped over the burst`,
    );
  });

  it("egress - pacing by packet time, scaled by the speed", async () => {
    const clock = new ManualClock();
    const { out, transport } = output(
      { targets: [{ kind: "vxlan", address: "10.0.0.1" }], pacing: { mode: "original", speed: 2 } },
      new MemoryTransport(),
      clock,
    );
    const sink = out.forFlow(flowContext());
    const [f] = framesOf(flowContext());
    for (let i = 0; i < 5; i++) put(sink, f, T0 + BigInt(i) * 10_000_000n); // every 10 ms of packet time
    void pass(out);
    const times: number[] = [];
    for (let t = 0; t <= 30; t++) {
      while (times.length < transport.sent.length) times.push(clock.now());
      clock.advance(1);
    }
    assert.deepEqual(times, [0, 5, 10, 15, 20], "10 ms of packet time is 5 ms of wall time at speed 2");
  });

  it("egress - frames without a flow are routed by their own headers; what is not TCP/UDP is counted", async () => {
    const { out, transport } = output({
      targets: [{ kind: "vxlan", address: "10.0.0.1" }],
      rules: [{ match: "port=53", action: "drop" }],
    });
    const flow = flowContext();
    const [c2s, s2c] = framesOf(flow, new Uint8Array(5));
    put(out, c2s);
    put(out, s2c);
    const [dns] = framesOf(flowContext({ transport: "udp", server: { address: "192.0.2.53", port: 53 } }));
    put(out, dns);
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    put(out, arp);
    await pass(out);
    assert.equal(transport.sent.length, 2, "the TCP flow's frames");
    assert.equal(transport.sent[0]!.slot, transport.sent[1]!.slot, "one slot for both directions");
    assert.deepEqual(
      decodePacket(1, parseVxlan(transport.sent[1]!.bytes)!.frame).ip?.source,
      decodePacket(1, s2c).ip?.source,
      "frame intact",
    );
    const r = out.report() as unknown as { framesUnroutable: number; framesDroppedByPolicy: number };
    assert.equal(r.framesUnroutable, 1, "ARP");
    assert.equal(r.framesDroppedByPolicy, 1, "DNS by the drop rule");
  });

  it("egress - a refusing target is counted and the others go on; close waits for sends in flight", async () => {
    const transport = new MemoryTransport(4, true);
    const { out } = output(
      {
        targets: [
          { name: "gone", kind: "vxlan", address: "10.0.0.1" },
          { name: "up", kind: "vxlan", address: "10.0.0.2" },
        ],
      },
      transport,
    );
    transport.refuse.set(0, "ECONNREFUSED");
    const sink = out.forFlow(flowContext());
    const [f] = framesOf(flowContext());
    for (let i = 0; i < 10; i++) put(sink, f);
    await pass(out);
    await out.close();
    const r = out.report() as unknown as {
      targets: { sendErrors: Record<string, number>; datagramsSent: number }[];
    };
    assert.deepEqual(r.targets[0]!.sendErrors, { ECONNREFUSED: 10 }, "refusals counted");
    assert.equal(r.targets[1]!.datagramsSent, 10, "the other target got everything");
  });

  it("egress - remapped flows leave with the mapped addresses", async () => {
    const { out, transport } = output({
      targets: [{ kind: "vxlan", address: "10.0.0.1" }],
      remap: { client: "100.64.0.0/10" },
    });
    const flow = flowContext();
    const [c2s] = framesOf(flow, new Uint8Array(3));
    put(out.forFlow(flow), c2s);
    await pass(out);
    const ip = decodePacket(1, parseVxlan(transport.sent[0]!.bytes)!.frame).ip!;
    assert.equal(ip.source[0], 100, "client mapped into 100.64/10");
    assert.equal(ip.source[1]! & 0xc0, 64, "client mapped into 100.64/10");
    assert.deepEqual([...ip.destination], [192, 0, 2, 10], "server unchanged");
  });
});
