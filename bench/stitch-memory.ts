/**
 * Child process of the stitch benchmark (run with --expose-gc): opens N connections in a stitcher, each with
 * a handshake and a first data chunk already emitted and nothing buffered, and reports the heap and RSS they
 * hold per connection. Prints one JSON line.
 */
import { createPcapngEncoder } from "@cloudtap/pcap";
import { Stitcher } from "@cloudtap/stitch";
import { Direction, Transport } from "@cloudtap/tap-format";

const N = Number(process.env["STITCH_MEMORY_CONNECTIONS"] ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const encoder = createPcapngEncoder({ linkType: 1 });
const stitcher = new Stitcher({ sink: encoder });
const payload = new Uint8Array(200).fill(0x41);
const users = Array.from({ length: 500 }, (_, i) => `user${i}@example.com`);
const apps = ["Slack", "Microsoft 365", "GitHub", "Salesforce", "Zoom"];

function settle(): { heap: number; rss: number } {
  for (let i = 0; i < 3; i++) gc!();
  return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
}

const before = settle();
const t0 = 1_764_000_000_000_000_000n;
for (let c = 0; c < N; c++) {
  const connId = c.toString(16).padStart(32, "0");
  stitcher.accept({
    type: "conn-open",
    connId,
    timestampNs: t0 + BigInt(c),
    transport: Transport.Tcp,
    ipVersion: 4,
    client: { address: `10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}`, port: 40000 + (c % 20000) },
    server: { address: "203.0.113.10", port: 443 },
    midstream: false,
    tcp: {
      clientMss: 1460,
      serverMss: 1460,
      clientWindowScale: 7,
      serverWindowScale: 7,
      sackPermitted: true,
    },
    attributes: {
      user: users[c % users.length]!,
      app: apps[c % apps.length]!,
      tenant: "acme",
      device: `LT-${c % 9000}`,
    },
  });
  stitcher.accept({
    type: "data",
    connId,
    direction: Direction.ClientToServer,
    offset: 0,
    timestampNs: t0 + BigInt(c),
    spanNs: 0,
    payload,
  });
  stitcher.accept({
    type: "data",
    connId,
    direction: Direction.ServerToClient,
    offset: 0,
    timestampNs: t0 + BigInt(c) + 1n,
    spanNs: 0,
    payload,
  });
  // As runStitchJob does between blobs: the time order releases what it holds (output, not connection
  // state), and the output is taken.
  if ((c & 4095) === 0) {
    stitcher.flushOlderThan();
    encoder.drain();
  }
}
stitcher.flushOlderThan();
encoder.flush();
const after = settle();
if (stitcher.table.size !== N) throw new Error(`expected ${N} open flows, have ${stitcher.table.size}`);
if (stitcher.table.stats.bufferedBytes !== 0) throw new Error("bytes still buffered: not idle");
process.stdout.write(
  `${JSON.stringify({
    connections: N,
    heapPerConnection: (after.heap - before.heap) / N,
    rssPerConnection: (after.rss - before.rss) / N,
    heldBytes: stitcher.stats.heldBytes,
  })}\n`,
);
