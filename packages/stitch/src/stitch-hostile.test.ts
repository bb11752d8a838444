/**
 * Hostile input reaching the stitcher: losses that used to pass silently are counted, named problems, and a
 * record stamped far outside its blob's time range does not become the flow table's clock.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BlobSource } from "@cloudtap/fetch";
import { createPcapngEncoder } from "@cloudtap/pcap";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  createCtapWriter,
  Direction,
  dataBlobKey,
  MemorySink,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { counterProblems, flowTableCountersOf, stitcherCountersOf } from "./run-report.js";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";

const T0 = 1_764_000_000_000_000_000n;
const SECOND = 1_000_000_000n;

function open(i: number, ts: bigint, transport: Transport = Transport.Tcp, port = 40000 + i): ConnOpenRecord {
  return {
    type: "conn-open",
    connId: i.toString(16).padStart(32, "0"),
    timestampNs: ts,
    transport,
    ipVersion: 4,
    client: { address: "10.0.0.1", port },
    server: { address: "192.0.2.1", port: transport === Transport.Udp ? 53 : 80 },
    midstream: false,
    tcp: {},
    attributes: {},
  };
}

function data(i: number, ts: bigint, offset: number, n: number): TapRecord {
  return {
    type: "data",
    connId: i.toString(16).padStart(32, "0"),
    direction: Direction.ClientToServer,
    offset,
    timestampNs: ts,
    spanNs: 0,
    payload: new Uint8Array(n).fill(i),
  };
}

async function blob(seq: number, startNs: bigint, records: TapRecord[]): Promise<BlobSource> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "gw-test", sequence: BigInt(seq), startNs });
  for (const r of records) await w.write(r);
  await w.finish(startNs + SECOND);
  const bytes = sink.bytes();
  return {
    key: dataBlobKey("", "gw-test", startNs, BigInt(seq)),
    kind: "data",
    size: bytes.length,
    readBytes: async () => bytes,
    read: async function* () {
      yield bytes;
    },
  };
}

async function stitch(blobs: BlobSource[]) {
  const encoder = createPcapngEncoder({ linkType: 1 });
  const stitcher = new Stitcher({ sink: encoder });
  const job = await runStitchJob({
    blobs: (async function* () {
      yield* blobs;
    })(),
    stitcher,
    output: encoder,
    sink: { write: () => {} },
  });
  const problems = [
    ...job.problems,
    ...counterProblems(stitcherCountersOf(stitcher), flowTableCountersOf(stitcher)),
  ];
  return { job, stitcher, problems };
}

describe("stitch - hostile input", () => {
  it("a conn-open stamped 2^64-1 is a problem of that record, not a new clock for every flow", async () => {
    const first: TapRecord[] = [];
    const second: TapRecord[] = [];
    for (let i = 1; i <= 20; i++) {
      first.push(open(i, T0), data(i, T0 + 1000n, 0, 100));
      second.push(data(i, T0 + SECOND, 100, 100));
    }
    first.push(open(99, 2n ** 64n - 1n));
    const { stitcher, problems } = await stitch([
      await blob(0, T0, first),
      await blob(1, T0 + SECOND, second),
    ]);
    const t = stitcher.table.stats;
    assert.equal(t.lateRecords, 0, "no record dropped as late");
    assert.equal(t.completed["idle-timeout"], 0, "no flow timed out");
    assert.equal(t.gaps, 0);
    const kinds = problems.map((p) => p.kind);
    assert.deepEqual(kinds, ["time-out-of-range"]);
    assert.match(problems[0]!.message, /conn-open of connection 0+63/);
    assert.equal(stitcher.stats.flowsTcp, 21, "the restamped conn-open still opens its flow");
  });

  it("a connection id reused with another 5-tuple (a second tapper) is reported by stitch", async () => {
    const { problems } = await stitch([
      await blob(0, T0, [open(1, T0), data(1, T0 + 1n, 0, 10)]),
      await blob(1, T0 + SECOND, [open(1, T0 + SECOND, Transport.Tcp, 55555), data(1, T0 + SECOND, 10, 10)]),
    ]);
    assert.deepEqual(
      problems.map((p) => p.kind),
      ["conflicting-open"],
    );
  });

  it("a UDP payload over 65,507 bytes (IPv4) is not written as invalid fragments: counted as a problem", async () => {
    const dgram = (index: number, n: number): TapRecord => ({
      type: "datagram",
      connId: (7).toString(16).padStart(32, "0"),
      direction: Direction.ClientToServer,
      index,
      timestampNs: T0 + BigInt(index),
      payload: new Uint8Array(n),
    });
    const { stitcher, problems } = await stitch([
      await blob(0, T0, [open(7, T0, Transport.Udp), dgram(0, 65_507), dgram(1, 65_508), dgram(2, 70_000)]),
    ]);
    assert.equal(stitcher.stats.udp.datagrams, 1, "the largest valid one is written");
    assert.equal(stitcher.stats.udp.oversizedDatagrams, 2);
    assert.deepEqual(
      problems.map((p) => p.kind),
      ["oversized-datagram"],
    );
  });

  it("an MSS of 1 in a conn-open is raised to 536 (one record is not cut into thousands of packets)", async () => {
    for (const mss of [1, 40, 535]) {
      const o = { ...open(5, T0), tcp: { clientMss: mss, serverMss: mss } };
      const { stitcher } = await stitch([await blob(0, T0, [o, data(5, T0 + 1n, 0, 53_600)])]);
      const segments = stitcher.stats.packets - 3; // less the SYN, SYN-ACK and ACK
      // 53,600 bytes at 536 per segment: 100 segments, plus the peer's ACKs (about one per two).
      assert.ok(segments >= 100 && segments <= 160, `MSS ${mss}: ${segments} packets`);
    }
  });

  it("a clean run reports no problems", async () => {
    const { problems } = await stitch([
      await blob(0, T0, [
        open(1, T0),
        data(1, T0 + 1n, 0, 10),
        {
          type: "conn-close",
          connId: (1).toString(16).padStart(32, "0"),
          timestampNs: T0 + 2n,
          reason: CloseReason.Fin,
          initiator: CloseInitiator.Client,
          bytesClientToServer: 10,
          bytesServerToClient: 0,
        },
      ]),
    ]);
    assert.deepEqual(problems, []);
  });
});
