import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createPcapngEncoder } from "@cloudtap/pcap";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  Direction,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { byEndpoints, expertInfo, followStreams, tshark } from "@cloudtap/test-harness";
import { Stitcher } from "./stitcher.js";

const CHECKSUMS = [
  "-o",
  "ip.check_checksum:TRUE",
  "-o",
  "tcp.check_checksum:TRUE",
  "-o",
  "udp.check_checksum:TRUE",
];
const T0 = 1_764_000_000_000_000_000n;
const MS = 1_000_000n;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function open(id: string, v6 = false, transport: Transport = Transport.Tcp): ConnOpenRecord {
  return {
    type: "conn-open",
    connId: id.repeat(32).slice(0, 32),
    timestampNs: T0,
    transport,
    ipVersion: v6 ? 6 : 4,
    client: { address: v6 ? "fd00:10::42" : "10.1.2.3", port: 50_123 },
    server: { address: v6 ? "2001:db8::80" : "192.0.2.80", port: transport === Transport.Udp ? 53 : 48_080 },
    midstream: false,
    tcp: {
      clientMss: 1460,
      serverMss: 1460,
      clientWindowScale: 7,
      serverWindowScale: 7,
      sackPermitted: true,
    },
    attributes: { user: "carol@example.com" },
  };
}

function chunks(
  o: ConnOpenRecord,
  dir: Direction,
  payload: Uint8Array,
  size: number,
  t: bigint,
): TapRecord[] {
  const out: TapRecord[] = [];
  for (let at = 0; at < payload.length; at += size) {
    out.push({
      type: "data",
      connId: o.connId,
      direction: dir,
      offset: at,
      timestampNs: t + BigInt(at),
      spanNs: 1000,
      payload: payload.subarray(at, at + size),
    });
  }
  return out;
}

function stitch(records: TapRecord[], file: string, mtu = 1500): Stitcher {
  const enc = createPcapngEncoder({ linkType: 1 });
  const s = new Stitcher({ sink: enc, mtu });
  for (const r of records) s.accept(r);
  s.flushAll();
  writeFileSync(file, Buffer.concat(enc.flush()));
  return s;
}

describe("stitch - packet synthesis judged by tshark", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-synth-"));
  after(() => process.env["KEEP_TEST_FILES"] || rmSync(dir, { recursive: true, force: true }));

  for (const v6 of [false, true]) {
    it(`a complete IPv${v6 ? 6 : 4} connection: exact bytes both ways, clean expert analysis`, () => {
      const o = open("a", v6);
      const req = bytes(300, 1);
      const resp = bytes(200_000, 2);
      const file = join(dir, `complete-v${v6 ? 6 : 4}.pcapng`);
      const recs: TapRecord[] = [
        o,
        ...chunks(o, Direction.ClientToServer, req, 300, T0 + MS),
        ...chunks(o, Direction.ServerToClient, resp, 16_384, T0 + 2n * MS),
        {
          type: "conn-close",
          connId: o.connId,
          timestampNs: T0 + 9n * MS,
          reason: CloseReason.Fin,
          initiator: CloseInitiator.Server,
          bytesClientToServer: req.length,
          bytesServerToClient: resp.length,
        },
      ];
      const s = stitch(recs, file);
      const got = byEndpoints(followStreams(file));
      const c = `${o.client.address}|${o.client.port}`;
      const srv = `${o.server.address}|${o.server.port}`;
      assert.deepEqual(got.get(`${c}>${srv}`), { bytes: req.length, sha256: sha(req) });
      assert.deepEqual(got.get(`${srv}>${c}`), { bytes: resp.length, sha256: sha(resp) });
      const bad = expertInfo(file, CHECKSUMS).filter(
        (e) => e.severity === "Errors" || e.severity === "Warnings",
      );
      assert.deepEqual(bad, []);
      // Segments fit the MTU: no frame above 1514 bytes.
      const sizes = tshark(["-r", file, "-T", "fields", "-e", "frame.len"]).trim().split("\n").map(Number);
      assert.ok(Math.max(...sizes) <= 1514, `largest frame ${Math.max(...sizes)}`);
      assert.equal(s.stats.tcp.payloadBytes, req.length + resp.length);
    });
  }

  it("a gap makes the sequence jump and is flagged once, exactly where it is", () => {
    const o = open("b");
    const resp = bytes(50_000, 3);
    const recs = chunks(o, Direction.ServerToClient, resp, 10_000, T0 + MS).filter(
      (r) => r.type !== "data" || r.offset !== 20_000,
    );
    const file = join(dir, "gap.pcapng");
    const s = stitch([o, ...chunks(o, 0, bytes(100, 4), 100, T0), ...recs], file);
    assert.equal(s.table.stats.gaps, 1);
    assert.equal(s.table.stats.gapBytes, 10_000);
    const flagged = expertInfo(file, CHECKSUMS).filter(
      (e) => e.severity === "Errors" || e.severity === "Warnings",
    );
    // The one gap, flagged where a capture with loss shows it: the segment after the hole, and the
    // receiver's ACK that covers it.
    assert.deepEqual(
      flagged.map((e) => [e.severity, e.summary, e.count]),
      [
        ["Warnings", "Previous segment(s) not captured (common at capture start)", 1],
        ["Warnings", "ACKed segment that wasn't captured (common at capture start)", 1],
      ],
    );
    const seqs = tshark([
      "-r",
      file,
      "-Y",
      "tcp.analysis.lost_segment",
      "-T",
      "fields",
      "-e",
      "tcp.seq",
    ]).trim();
    assert.equal(seqs, String(1 + 30_000), "the first segment after the hole is the one flagged");
  });

  it("a UDP datagram above the MTU goes out as IP fragments that tshark reassembles", () => {
    for (const v6 of [false, true]) {
      const o = open("c", v6, Transport.Udp);
      const big = bytes(4000, 5);
      const file = join(dir, `udp-v${v6 ? 6 : 4}.pcapng`);
      stitch(
        [
          o,
          {
            type: "datagram",
            connId: o.connId,
            direction: 0,
            index: 0,
            timestampNs: T0,
            payload: bytes(40, 6),
          },
          { type: "datagram", connId: o.connId, direction: 1, index: 0, timestampNs: T0 + MS, payload: big },
        ],
        file,
      );
      const payloads = tshark([
        "-r",
        file,
        ...CHECKSUMS,
        "-Y",
        "udp",
        "-T",
        "fields",
        "-e",
        "udp.length",
        "-e",
        "udp.checksum.status",
      ])
        .trim()
        .split("\n");
      assert.deepEqual(payloads, ["48\t1", "4008\t1"], `IPv${v6 ? 6 : 4}`);
      const frames = tshark(["-r", file, "-T", "fields", "-e", "frame.len"]).trim().split("\n").map(Number);
      assert.ok(Math.max(...frames) <= 1514);
      assert.ok(frames.length >= 4);
    }
  });

  it("drops flows the filter rejects, and counts them", () => {
    const enc = createPcapngEncoder({ linkType: 1 });
    const s = new Stitcher({ sink: enc, filter: ["reject user=carol@*"] });
    s.accept(open("d"));
    s.flushAll();
    assert.equal(s.stats.flowsFiltered, 1);
    assert.equal(s.stats.packets, 0);
  });
});
