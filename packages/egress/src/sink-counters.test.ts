import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createCaptureFileOutput } from "./capture-file-output.js";
import { createEgress } from "./egress.js";
import { createExportPolicy } from "./export-policy.js";
import { sinkCountersOf } from "./sink-counters.js";
import { flowContext, framesOf, MemoryTransport } from "./test-frames.js";
import { TunnelOutput } from "./tunnel-output.js";

const T0 = 1_764_064_800_000_000_000n;

describe("egress - per-sink counters from the outputs' reports", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-egress-sinks-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("egress - a pcapng file and a VXLAN target: packets and bytes per sink, the tunnel's policy drops apart", async () => {
    const file = createCaptureFileOutput({ path: join(dir, "s.pcapng"), format: "pcapng", embedKeys: false });
    const transport = new MemoryTransport();
    const tunnel = new TunnelOutput({
      policy: createExportPolicy({ targets: [{ kind: "vxlan", address: "10.0.0.1" }] }),
      transport,
    });
    const egress = createEgress([tunnel, file]);
    const flow = flowContext();
    const sink = egress.forFlow(flow);
    const [c2s, s2c] = framesOf(flow, new Uint8Array(40).fill(7));
    sink.begin(c2s.length).set(c2s);
    sink.commit(T0);
    sink.begin(s2c.length).set(s2c);
    sink.commit(T0 + 1000n);
    for (const c of egress.flush()) await egress.write(c);
    await egress.close();

    const sinks = egress.report().outputs.flatMap(sinkCountersOf);
    const byKind = new Map(sinks.map((s) => [s.sinkKind, s]));
    const captured = byKind.get("pcapng");
    assert.ok(captured);
    assert.equal(captured.packets, 2);
    assert.ok((captured.bytes ?? 0) > c2s.length + s2c.length, "the file's bytes, headers included");
    const target = byKind.get("vxlan");
    assert.ok(target, "the tunnel target is a sink of its own");
    assert.equal(target.packets, transport.sent.length);
    assert.equal(
      target.bytes,
      transport.sent.reduce((a, d) => a + d.bytes.length, 0),
    );
    assert.deepEqual(target.drops, {});
    const tunnelItself = byKind.get("tunnel");
    assert.ok(tunnelItself && tunnelItself.packets === undefined, "the tunnel output carries only its drops");
  });

  it("egress - drops by reason, only the reasons that happened", () => {
    const [s] = sinkCountersOf({
      name: "pcap-over-ip:127.0.0.1:57012",
      kind: "pcap-over-ip",
      packets: 10,
      droppedPackets: 3,
      packetsWithoutClients: 0,
      clients: [{ bytes: 100 }, { bytes: 50 }],
    });
    assert.deepEqual(s, {
      sink: "pcap-over-ip:127.0.0.1:57012",
      sinkKind: "pcap-over-ip",
      packets: 10,
      bytes: 150,
      drops: { slow_client: 3 },
    });
  });
});
