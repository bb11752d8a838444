import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ObjectStore, readAll } from "@cloudtap/object-store";
import {
  buildEthernetFrame,
  buildIpPacket,
  buildIpv4Packet,
  buildTcpSegment,
  buildUdpDatagram,
  EtherType,
  encodeTcpOptions,
  LinkType,
  parseIpAddress,
  TcpFlag,
} from "@cloudtap/packet";
import { createPcapWriter, isPcapFormatError, PcapErrorCode, readCapture } from "@cloudtap/pcap";
import {
  CloseInitiator,
  CloseReason,
  dataPrefix,
  keysPrefix,
  parseBlobKey,
  readCtap,
  Transport,
} from "@cloudtap/tap-format";
import { corpusDir } from "@cloudtap/test-harness";
import { IngestErrorCode, isIngestError } from "./errors.js";
import { type IngestOptions, ingestCapture } from "./ingest.js";
import { IngestProblemKind, type IngestSummary } from "./summary.js";
import { joinDirection, type ReadBackConnection, readBack, withTempStore } from "./test-support.js";

const { Syn, Ack, Fin, Rst, Psh } = TcpFlag;
const CLIENT = "192.0.2.10";
const SERVER = "198.51.100.20";
const text = new TextEncoder();
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

interface Frame {
  readonly data: Uint8Array;
  readonly t?: bigint;
  /** The length on the wire, when the capture cut the frame (snap length). */
  readonly originalLength?: number;
}

/** An Ethernet frame carrying one TCP segment. */
function tcp(
  from: [string, number],
  to: [string, number],
  seq: number,
  ack: number,
  flags: number,
  payload = "",
  options?: Uint8Array,
): Frame {
  const src = parseIpAddress(from[0]);
  const dst = parseIpAddress(to[0]);
  const segment = buildTcpSegment({
    sourceAddress: src,
    destinationAddress: dst,
    sourcePort: from[1],
    destinationPort: to[1],
    sequenceNumber: seq >>> 0,
    acknowledgmentNumber: ack >>> 0,
    flags,
    payload: text.encode(payload),
    ...(options ? { options } : {}),
  });
  const etherType = src.length === 4 ? EtherType.Ipv4 : EtherType.Ipv6;
  return { data: buildEthernetFrame({ etherType, payload: buildIpPacket(src, dst, 6, segment) }) };
}

function udp(from: [string, number], to: [string, number], payload: string, t?: bigint): Frame {
  const src = parseIpAddress(from[0]);
  const dst = parseIpAddress(to[0]);
  const datagram = buildUdpDatagram({
    sourceAddress: src,
    destinationAddress: dst,
    sourcePort: from[1],
    destinationPort: to[1],
    payload: text.encode(payload),
  });
  const frame = buildEthernetFrame({
    etherType: EtherType.Ipv4,
    payload: buildIpPacket(src, dst, 17, datagram),
  });
  return t === undefined ? { data: frame } : { data: frame, t };
}

const BASE_NS = 1_700_000_000_000_000_000n;

async function pcap(
  frames: readonly Frame[],
  options: { littleEndian?: boolean; resolution?: "microsecond" | "nanosecond" } = {},
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const writer = createPcapWriter(
    { write: (c) => void chunks.push(c) },
    { linkType: LinkType.Ethernet, ...options },
  );
  let t = BASE_NS;
  for (const f of frames) {
    t = f.t ?? t + 1_000_000n;
    await writer.writePacket({
      timestampNs: t,
      data: f.data,
      ...(f.originalLength === undefined ? {} : { originalLength: f.originalLength }),
    });
  }
  await writer.flush();
  return readAll(
    (async function* () {
      yield* chunks;
    })(),
  );
}

interface Ingested {
  readonly summary: IngestSummary;
  readonly conns: ReadBackConnection[];
}

async function ingestFrames(frames: readonly Frame[], extra: Partial<IngestOptions> = {}): Promise<Ingested> {
  const capture = await pcap(frames);
  return withTempStore(async (store) => {
    const summary = await ingestCapture({ capture, captureName: "test.pcap", dataStore: store, ...extra });
    return { summary, conns: [...(await readBack(store)).values()] };
  });
}

function streams(conn: ReadBackConnection): { c2s: string; s2c: string } {
  return { c2s: decode(joinDirection(conn.data[0]).bytes), s2c: decode(joinDirection(conn.data[1]).bytes) };
}

const c: [string, number] = [CLIENT, 50000];
const s: [string, number] = [SERVER, 443];
const ISN_C = 1000;
const ISN_S = 5000;

/** SYN, SYN-ACK, ACK with Linux-like options. */
function handshake(client = c, server = s, isnC = ISN_C, isnS = ISN_S): Frame[] {
  return [
    tcp(
      client,
      server,
      isnC,
      0,
      Syn,
      "",
      encodeTcpOptions({
        mss: 1460,
        sackPermitted: true,
        timestamps: { value: 1, echoReply: 0 },
        windowScale: 7,
      }),
    ),
    tcp(
      server,
      client,
      isnS,
      isnC + 1,
      Syn | Ack,
      "",
      encodeTcpOptions({
        mss: 1400,
        sackPermitted: true,
        timestamps: { value: 9, echoReply: 1 },
        windowScale: 9,
      }),
    ),
    tcp(client, server, isnC + 1, isnS + 1, Ack),
  ];
}

describe("ingest", () => {
  for (const [name, options] of [
    ["little-endian microsecond", { littleEndian: true, resolution: "microsecond" }],
    ["big-endian nanosecond", { littleEndian: false, resolution: "nanosecond" }],
  ] as const) {
    it(`ingest - a whole TCP conversation from a ${name} pcap`, async () => {
      const frames = [
        ...handshake(),
        tcp(c, s, ISN_C + 1, ISN_S + 1, Psh | Ack, "GET / HTTP/1.1\r\n\r\n"),
        tcp(s, c, ISN_S + 1, ISN_C + 19, Psh | Ack, "HTTP/1.1 200 OK\r\n"),
        tcp(s, c, ISN_S + 18, ISN_C + 19, Psh | Ack, "\r\nhello"),
        tcp(c, s, ISN_C + 19, ISN_S + 25, Fin | Ack),
        tcp(s, c, ISN_S + 25, ISN_C + 20, Fin | Ack),
        tcp(c, s, ISN_C + 20, ISN_S + 26, Ack),
      ];
      const capture = await pcap(frames, options);
      const { summary, conns } = await withTempStore(async (store) => {
        const sum = await ingestCapture({
          capture,
          captureName: "conv.pcap",
          dataStore: store,
          attributes: { user: "alice" },
        });
        return { summary: sum, conns: [...(await readBack(store)).values()] };
      });
      assert.equal(summary.packets, 9);
      assert.deepEqual(summary.connections, { tcp: 1, udp: 0, midstream: 0, evicted: 0, idleTimeouts: 0 });
      assert.deepEqual(summary.payloadBytes, { tcp: 18 + 24, udp: 0 });
      assert.equal(conns.length, 1);
      const conn = conns[0]!;
      assert.match(conn.open.connId, /^[0-9a-f]{32}$/);
      assert.deepEqual(conn.open.client, { address: CLIENT, port: 50000 });
      assert.deepEqual(conn.open.server, { address: SERVER, port: 443 });
      assert.equal(conn.open.transport, Transport.Tcp);
      assert.equal(conn.open.ipVersion, 4);
      assert.equal(conn.open.midstream, false);
      assert.equal(conn.open.timestampNs, BASE_NS + 1_000_000n);
      assert.deepEqual(conn.open.attributes, { user: "alice" });
      assert.deepEqual(conn.open.tcp, {
        clientMss: 1460,
        serverMss: 1400,
        clientWindowScale: 7,
        serverWindowScale: 9,
        sackPermitted: true,
        timestamps: true,
        clientIsn: ISN_C,
        serverIsn: ISN_S,
      });
      assert.deepEqual(streams(conn), { c2s: "GET / HTTP/1.1\r\n\r\n", s2c: "HTTP/1.1 200 OK\r\n\r\nhello" });
      assert.deepEqual(
        conn.data[0].map((d) => d.offset),
        [0],
        "offsets start at ISN + 1",
      );
      assert.deepEqual(
        conn.data[1].map((d) => d.offset),
        [0],
        "consecutive segments of one turn are coalesced",
      );
      assert.equal(conn.data[1][0]?.timestampNs, BASE_NS + 5_000_000n);
      assert.deepEqual(
        {
          reason: conn.close?.reason,
          initiator: conn.close?.initiator,
          c2s: conn.close?.bytesClientToServer,
          s2c: conn.close?.bytesServerToClient,
        },
        { reason: CloseReason.Fin, initiator: CloseInitiator.Client, c2s: 18, s2c: 24 },
      );
      assert.equal(conn.close?.timestampNs, BASE_NS + 8_000_000n, "closed when the second FIN was seen");
    });
  }

  it("ingest - retransmissions, out-of-order segments and overlaps: first seen wins", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "abcd"),
      tcp(c, s, ISN_C + 9, ISN_S + 1, Ack, "ijkl"), // ahead of a hole
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "abcd"), // retransmission
      tcp(c, s, ISN_C + 3, ISN_S + 1, Ack, "XXefgh"), // overlaps "cd" with other bytes, fills the hole
      tcp(c, s, ISN_C + 11, ISN_S + 1, Ack, "YYmn"), // overlaps "kl"
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.deepEqual(streams(conns[0]!), { c2s: "abcdefghijklmn", s2c: "" });
    assert.equal(summary.tcp.duplicateBytes, 4 + 2 + 2);
    assert.equal(summary.tcp.gapBytes, 0);
  });

  it("ingest - a hole that never fills leaves the later data at its true offset", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "abc"),
      tcp(c, s, ISN_C + 11, ISN_S + 1, Ack, "klm"),
    ];
    const { summary, conns } = await ingestFrames(frames);
    const data = conns[0]!.data[0].map((d) => ({ offset: d.offset, text: decode(d.payload) }));
    assert.deepEqual(data, [
      { offset: 0, text: "abc" },
      { offset: 10, text: "klm" },
    ]);
    assert.equal(summary.tcp.gapBytes, 7);
    assert.equal(conns[0]!.close?.reason, CloseReason.TapperStop);
    assert.equal(conns[0]!.close?.initiator, CloseInitiator.Unknown);
  });

  it("ingest - the out-of-order buffer is capped: overflow is counted and data still flows", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "a"),
      tcp(c, s, ISN_C + 3, ISN_S + 1, Ack, "cccc"),
      tcp(c, s, ISN_C + 7, ISN_S + 1, Ack, "gggg"),
      tcp(c, s, ISN_C + 2, ISN_S + 1, Ack, "b"), // too late: the hole was given up
    ];
    const { summary, conns } = await ingestFrames(frames, { maxBufferedBytesPerDirection: 6 });
    assert.equal(summary.tcp.bufferOverflows, 1);
    assert.equal(summary.tcp.gapBytes, 1);
    assert.deepEqual(
      conns[0]!.data[0].map((d) => [d.offset, decode(d.payload)]),
      [
        [0, "a"],
        [2, "ccccgggg"],
      ],
    );
  });

  it("ingest - sequence numbers wrap around 2^32 without a jump in offsets", async () => {
    const isn = 0xffff_fffa;
    const frames = [
      ...handshake(c, s, isn, ISN_S),
      tcp(c, s, isn + 1, ISN_S + 1, Ack, "0123"),
      tcp(c, s, (isn + 5) >>> 0, ISN_S + 1, Ack, "4567"), // crosses 2^32
      tcp(c, s, (isn + 9) >>> 0, ISN_S + 1, Ack, "89"),
    ];
    const { conns } = await ingestFrames(frames);
    assert.deepEqual(streams(conns[0]!), { c2s: "0123456789", s2c: "" });
    assert.equal(conns[0]!.open.tcp.clientIsn, isn);
  });

  it("ingest - a connection first seen mid-stream: higher port is the client, offsets from the first byte", async () => {
    const frames = [
      tcp(s, c, 70000, 9000, Ack, "response part 2"), // the server speaks first in the capture
      tcp(c, s, 9000, 70015, Ack, "next request"),
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.equal(summary.connections.midstream, 1);
    const conn = conns[0]!;
    assert.equal(conn.open.midstream, true);
    assert.deepEqual(conn.open.client, { address: CLIENT, port: 50000 });
    assert.deepEqual(conn.open.tcp, {});
    assert.deepEqual(streams(conn), { c2s: "next request", s2c: "response part 2" });
    assert.equal(conn.data[1][0]?.offset, 0);
  });

  it("ingest - a missed SYN: the SYN-ACK names the client and where its stream starts", async () => {
    const frames = [
      tcp(s, c, ISN_S, ISN_C + 1, Syn | Ack, "", encodeTcpOptions({ mss: 1400 })),
      tcp(c, s, ISN_C + 3, ISN_S + 1, Ack, "cd"), // "ab" was lost before the capture saw it
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "ab"),
    ];
    const { conns } = await ingestFrames(frames);
    const conn = conns[0]!;
    assert.equal(conn.open.midstream, false);
    assert.deepEqual(conn.open.client, { address: CLIENT, port: 50000 });
    assert.deepEqual(conn.open.tcp, { serverMss: 1400, serverIsn: ISN_S });
    assert.deepEqual(streams(conn), { c2s: "abcd", s2c: "" });
  });

  it("ingest - RST closes with the sender as initiator", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "hi"),
      tcp(s, c, ISN_S + 1, 0, Rst, "diagnostic text"),
    ];
    const { conns } = await ingestFrames(frames);
    assert.equal(conns[0]!.close?.reason, CloseReason.Rst);
    assert.equal(conns[0]!.close?.initiator, CloseInitiator.Server);
    assert.deepEqual(streams(conns[0]!), { c2s: "hi", s2c: "" }, "a RST's payload is not stream data");
  });

  it("ingest - records land in blobs soon after their time: a quiet connection's chunk, a FIN, the conn-close", async () => {
    // Connection A answers once, stays open 2 s without a byte, then half-closes and closes; connection B
    // talks every millisecond meanwhile. Before, A's last response waited for A's close (and its 2 s
    // linger) and its conn-close for the linger: written seconds after their time, behind B's records.
    const b: [string, number] = [CLIENT, 50001];
    const ms = (n: number) => BASE_NS + BigInt(n) * 1_000_000n;
    const frames: Frame[] = [
      ...handshake().map((f, i) => ({ ...f, t: ms(i) })),
      { ...tcp(c, s, ISN_C + 1, ISN_S + 1, Psh | Ack, "GET / HTTP/1.1\r\n\r\n"), t: ms(3) },
      { ...tcp(s, c, ISN_S + 1, ISN_C + 19, Psh | Ack, "HTTP/1.1 200 OK\r\n\r\n"), t: ms(4) },
      ...handshake(b, s, 7000, 9000).map((f, i) => ({ ...f, t: ms(5 + i) })),
    ];
    let seq = 7001;
    for (let i = 0; i < 3000; i++) {
      frames.push({ ...tcp(b, s, seq, 9001, Psh | Ack, "x"), t: ms(10 + i) });
      seq++;
      if (i === 2000) {
        frames.push({ ...tcp(s, c, ISN_S + 20, ISN_C + 19, Fin | Ack), t: ms(10 + i) });
        frames.push({ ...tcp(c, s, ISN_C + 19, ISN_S + 21, Fin | Ack), t: ms(10 + i) });
      }
      if (i === 2001) frames.push({ ...tcp(s, c, ISN_S + 21, ISN_C + 20, Ack), t: ms(10 + i) });
    }
    const capture = await pcap(frames);
    const { order, summary } = await withTempStore(async (store) => {
      const sum = await ingestCapture({ capture, captureName: "quiet.pcap", dataStore: store });
      // Each record's time and its last byte's (the time plus its span), in the order written.
      const times: [bigint, bigint][] = [];
      for await (const info of store.list(dataPrefix(""))) {
        for await (const item of readCtap(store.read(info.key)))
          if ("timestampNs" in item)
            times.push([item.timestampNs, item.type === "data" ? BigInt(item.spanNs) : 0n]);
      }
      return { order: times, summary: sum };
    });
    // No record's last byte is older than a record written before it by more than the 15 ms of the quiet
    // flush; and no chunk spans more than 100 ms (B's byte a millisecond for 3 s is cut).
    let newest = order[0]![0];
    let worst = 0n;
    for (const [ts, span] of order) {
      if (newest - (ts + span) > worst) worst = newest - (ts + span);
      if (ts > newest) newest = ts;
      assert.ok(span <= 100_000_000n, `a chunk spans ${Number(span) / 1e6} ms`);
    }
    assert.ok(worst <= 20_000_000n, `a record written ${Number(worst) / 1e6} ms after a newer one`);
    // The close's last ACK came after the conn-close was written: absorbed and counted.
    assert.equal(summary.tcp.afterCloseSegments, 1);
  });

  it("ingest - a new SYN on a finished 5-tuple starts a second connection", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "first"),
      tcp(c, s, ISN_C + 6, ISN_S + 1, Fin | Ack),
      tcp(s, c, ISN_S + 1, ISN_C + 7, Fin | Ack),
      ...handshake(c, s, 777_777, 888_888),
      tcp(c, s, 777_778, 888_889, Ack, "second"),
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.equal(summary.connections.tcp, 2);
    assert.deepEqual(conns.map((x) => streams(x).c2s).sort(), ["first", "second"]);
    assert.notEqual(conns[0]!.open.connId, conns[1]!.open.connId);
    assert.deepEqual(conns.map((x) => x.close?.reason).sort(), [CloseReason.Fin, CloseReason.TapperStop]);
  });

  it("ingest - a retransmitted SYN does not start a new connection", async () => {
    const [syn, synAck, ack] = handshake();
    const { summary } = await ingestFrames([
      syn!,
      syn!,
      synAck!,
      ack!,
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "x"),
    ]);
    assert.equal(summary.connections.tcp, 1);
  });

  it("ingest - IPv6 connections keep RFC 5952 addresses", async () => {
    const c6: [string, number] = ["2001:db8:0:0::1", 40000];
    const s6: [string, number] = ["2001:db8::2", 8443];
    const { conns } = await ingestFrames([
      ...handshake(c6, s6),
      tcp(c6, s6, ISN_C + 1, ISN_S + 1, Ack, "v6"),
    ]);
    assert.equal(conns[0]!.open.ipVersion, 6);
    assert.deepEqual(conns[0]!.open.client, { address: "2001:db8::1", port: 40000 });
    assert.equal(streams(conns[0]!).c2s, "v6");
  });

  it("ingest - UDP: one flow per 5-tuple, client = first sender, datagrams numbered per direction", async () => {
    const dns: [string, number] = ["192.0.2.53", 53];
    const frames = [
      udp(c, dns, "q1"),
      udp(dns, c, "r1"),
      udp(c, dns, "q2"),
      udp([CLIENT, 50001], dns, "other"),
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.equal(summary.connections.udp, 2);
    assert.deepEqual(summary.payloadBytes, { tcp: 0, udp: 11 });
    const flow = conns.find((x) => x.open.client.port === 50000)!;
    assert.equal(flow.open.transport, Transport.Udp);
    assert.deepEqual(flow.open.server, { address: "192.0.2.53", port: 53 });
    assert.deepEqual(
      flow.datagrams[0].map((d) => [d.index, decode(d.payload)]),
      [
        [0, "q1"],
        [1, "q2"],
      ],
    );
    assert.deepEqual(
      flow.datagrams[1].map((d) => [d.index, decode(d.payload)]),
      [[0, "r1"]],
    );
    assert.deepEqual(
      [flow.close?.reason, flow.close?.bytesClientToServer, flow.close?.bytesServerToClient],
      [CloseReason.TapperStop, 4, 2],
    );
  });

  it("ingest - idle timeout closes a flow; a later packet starts a new one", async () => {
    const dns: [string, number] = ["192.0.2.53", 53];
    const frames = [
      udp(c, dns, "a", BASE_NS),
      udp(c, dns, "b", BASE_NS + 10_000_000_000n),
      udp(s, dns, "tick", BASE_NS + 20_000_000_000n), // another flow makes time pass
    ];
    const { summary, conns } = await ingestFrames(frames, { idleTimeoutNs: 5_000_000_000n });
    assert.equal(summary.connections.udp, 3);
    assert.equal(summary.connections.idleTimeouts, 2);
    const timedOut = conns.filter((x) => x.close?.reason === CloseReason.Timeout);
    assert.equal(timedOut.length, 2);
  });

  it("ingest - the connection table is capped: the least recently active connection is evicted", async () => {
    const frames = [
      udp(c, s, "1"),
      udp([CLIENT, 50001], s, "2"),
      udp(c, s, "1 again"),
      udp([CLIENT, 50002], s, "3"),
    ];
    const { summary, conns } = await ingestFrames(frames, { maxConnections: 2 });
    assert.equal(summary.connections.evicted, 1);
    const evicted = conns.filter((x) => x.close?.reason === CloseReason.Timeout);
    assert.deepEqual(
      evicted.map((x) => x.open.client.port),
      [50001],
    );
  });

  it("ingest - packets that are not TCP or UDP over IP are counted by reason", async () => {
    const src = parseIpAddress(CLIENT);
    const dst = parseIpAddress(SERVER);
    const frames: Frame[] = [
      { data: buildEthernetFrame({ etherType: EtherType.Arp, payload: new Uint8Array(28) }) },
      {
        data: buildEthernetFrame({
          etherType: EtherType.Ipv4,
          payload: buildIpv4Packet({
            source: src,
            destination: dst,
            protocol: 1,
            payload: new Uint8Array(8),
          }),
        }),
      },
      {
        data: buildEthernetFrame({
          etherType: EtherType.Ipv4,
          payload: buildIpv4Packet({
            source: src,
            destination: dst,
            protocol: 17,
            payload: new Uint8Array(16),
            moreFragments: true,
          }),
        }),
      },
      {
        data: buildEthernetFrame({
          etherType: EtherType.Ipv4,
          payload: buildIpv4Packet({
            source: src,
            destination: dst,
            protocol: 6,
            payload: new Uint8Array(7),
          }),
        }),
      },
      { data: buildEthernetFrame({ etherType: EtherType.Ipv4, payload: Uint8Array.of(0x45, 0) }) },
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.deepEqual(summary.skipped, {
      "unsupported-link-type": 0,
      malformed: 2,
      "not-ip": 1,
      "ip-fragment": 1,
      "other-protocol": 1,
      "truncated-datagram": 0,
    });
    assert.equal(conns.length, 0);
    assert.equal(summary.blobs.length, 0);
  });

  it("ingest - blobs rotate at the size cap, keys follow the tap-format layout, output is deterministic", async () => {
    const frames = [...handshake()];
    let seq = ISN_C + 1;
    for (let i = 0; i < 40; i++) {
      const line = `line ${String(i).padStart(3, "0")} ${"x".repeat(90)}\n`;
      frames.push(tcp(c, s, seq, ISN_S + 1, Ack, line));
      frames.push(tcp(s, c, ISN_S + 1, seq + line.length, Ack)); // pure ACKs do not cut chunks
      seq += line.length;
    }
    const capture = await pcap(frames);
    const run = () =>
      withTempStore(async (store) => {
        const summary = await ingestCapture({
          capture,
          captureName: "rot.pcap",
          dataStore: store,
          prefix: "tenant-a",
          tapperId: "gw-1",
          maxBlobBytes: 1024,
          maxChunkBytes: 500,
        });
        const bodies = new Map<string, string>();
        for await (const o of store.list(""))
          bodies.set(o.key, Buffer.from(await store.readBytes(o.key)).toString("hex"));
        return { summary, bodies, conns: [...(await readBack(store, "tenant-a")).values()] };
      });
    const first = await run();
    assert.ok(first.summary.blobs.length >= 4, `${first.summary.blobs.length} blobs`);
    first.summary.blobs.forEach((b, i) => {
      const parsed = parseBlobKey(b.key);
      assert.equal(parsed?.kind, "data");
      assert.equal(parsed?.prefix, "tenant-a");
      assert.equal(parsed?.tapperId, "gw-1");
      assert.equal(parsed?.sequence, BigInt(i));
      assert.equal(parsed?.startNs, b.startNs);
      assert.ok(b.endNs >= b.startNs);
    });
    const data = first.conns[0]!.data[0];
    assert.ok(data.every((d) => d.payload.length <= 500));
    assert.equal(decode(joinDirection(data).bytes).split("\n").length, 41);
    const second = await run();
    assert.deepEqual(second.bodies, first.bodies);
  });

  it("ingest - the pcapng Decryption Secrets Block and the key log option become key-log objects", async () => {
    const capture = readFileSync(`${corpusDir()}captures/ja4__chrome-cloudflare-quic-with-secrets.pcapng`);
    let dsbText = "";
    for await (const item of readCapture(capture)) if (item.type === "tls-key-log") dsbText = item.text;
    assert.ok(dsbText.length > 0);
    await withTempStore((dataStore) =>
      withTempStore(async (keyStore: ObjectStore) => {
        const summary = await ingestCapture({
          capture,
          captureName: "ja4.pcapng",
          keyLog: "CLIENT_RANDOM 01 02\n",
          dataStore,
          keyStore,
          prefix: "p",
        });
        assert.deepEqual(
          summary.keyLogs.map((k) => k.source),
          ["key-log-option", "capture-dsb"],
        );
        assert.equal(summary.connections.tcp, 1);
        assert.ok(summary.connections.udp >= 1, "the QUIC flow is a UDP connection");
        const keys: string[] = [];
        for await (const o of keyStore.list(keysPrefix("p"))) keys.push(o.key);
        assert.deepEqual(keys, summary.keyLogs.map((k) => k.key).sort());
        for (const k of keys) assert.equal(parseBlobKey(k)?.kind, "keys");
        const texts = await Promise.all(keys.map(async (k) => decode(await keyStore.readBytes(k))));
        assert.deepEqual(new Set(texts), new Set(["CLIENT_RANDOM 01 02\n", dsbText]));
        for await (const o of dataStore.list(""))
          assert.ok(!o.key.includes("/keys/"), "no key log in the data store");
      }),
    );
  });

  it("ingest - a capture cut inside its last record (a killed tcpdump): reported, what was read is stored and valid", async () => {
    const frames = [
      ...handshake(),
      tcp(c, s, ISN_C + 1, ISN_S + 1, Ack, "kept"),
      tcp(c, s, ISN_C + 5, ISN_S + 1, Ack, "lost"),
    ];
    const whole = await pcap(frames);
    const cut = whole.subarray(0, whole.length - 10);
    const lastRecordOffset = whole.length - (16 + frames[4]!.data.length);
    await withTempStore(async (store) => {
      const summary = await ingestCapture({ capture: cut, captureName: "cut.pcap", dataStore: store });
      assert.equal(summary.packets, 4);
      assert.deepEqual(
        summary.problems.map((p) => [p.where, p.kind]),
        [["cut.pcap", IngestProblemKind.CaptureTruncated]],
      );
      assert.match(
        summary.problems[0]!.message,
        new RegExp(`after 4 packets \\(truncated record: .* at offset ${lastRecordOffset}\\)`),
      );
      // Every blob written reads back whole (the strict reader checks the blob-end frame count).
      const conns = [...(await readBack(store)).values()];
      assert.deepEqual(streams(conns[0]!), { c2s: "kept", s2c: "" });
      assert.equal(conns[0]!.close?.reason, CloseReason.TapperStop);
    });
    await withTempStore(async (store) => {
      await assert.rejects(
        ingestCapture({ capture: text.encode("not a capture"), captureName: "x", dataStore: store }),
        (err: unknown) =>
          isIngestError(err) &&
          err.code === IngestErrorCode.CaptureUnreadable &&
          isPcapFormatError(err.cause) &&
          err.cause.code === PcapErrorCode.BadMagic &&
          err.cause.offset === 0,
      );
    });
  });

  it("ingest - a segment cut to 0 payload bytes by the snap length counts as truncated, not empty", async () => {
    const full = tcp(c, s, ISN_C + 1, ISN_S + 1, Ack | Psh, "hello");
    const headers = 14 + 20 + 20;
    const frames = [
      ...handshake(),
      { data: full.data.subarray(0, headers), originalLength: full.data.length },
      tcp(c, s, ISN_C + 6, ISN_S + 1, Ack, "after"),
    ];
    const { summary, conns } = await ingestFrames(frames);
    assert.equal(summary.tcp.truncatedSegments, 1);
    assert.equal(summary.tcp.gapBytes, 5, "the 5 bytes never captured are a gap");
    assert.equal(decode(joinDirection(conns[0]!.data[0]).bytes), "after");
  });

  it("ingest - key logs are stored owner-only (0600), and lines every reader skips are problems by line", async () => {
    const rnd = "ab".repeat(32);
    const keyLog = `CLIENT_RANDOM ${rnd} ${"cd".repeat(48)}\nCLIENT_RANDOM ${rnd} nothex\n# comment\nSERVER_TRAFFIC_SECRET_0 ${rnd} 00ff\n`;
    const previous = process.umask(0o022);
    try {
      await withTempStore(async (store) => {
        const summary = await ingestCapture({
          capture: await pcap(handshake()),
          captureName: "k.pcap",
          keyLog,
          dataStore: store,
        });
        assert.equal(summary.keyLogs.length, 1);
        const written = summary.keyLogs[0]!;
        assert.equal(written.secrets, 1);
        assert.equal(written.skippedLines, 2);
        assert.deepEqual(summary.problems, [
          {
            where: written.key,
            kind: IngestProblemKind.KeyLogMalformedLines,
            message:
              "2 line(s) skipped: line 2: bad-hex (CLIENT_RANDOM); line 4: bad-secret-length (SERVER_TRAFFIC_SECRET_0)",
          },
        ]);
        const path = fileURLToPath(new URL(written.key, `${store.url.replace(/\/?$/, "/")}`));
        assert.equal((await stat(path)).mode & 0o777, 0o600);
        assert.ok(!JSON.stringify(summary.problems).includes("cdcd"), "no secret in the problems");
      });
    } finally {
      process.umask(previous);
    }
  });

  it("ingest - shuffled and duplicated packets of a real capture give the same streams", async () => {
    const bytes = readFileSync(`${corpusDir()}captures/snet__tls1.3_curl_google.pcap`);
    const original: Frame[] = [];
    for await (const item of readCapture(bytes))
      if (item.type === "packet") original.push({ data: item.data.slice() });
    // Keep the handshake first, then swap neighbours and repeat every third packet.
    const shuffled = original.slice(0, 3);
    const rest = original.slice(3);
    for (let i = 0; i + 1 < rest.length; i += 2) shuffled.push(rest[i + 1]!, rest[i]!);
    if (rest.length % 2 === 1) shuffled.push(rest[rest.length - 1]!);
    const noisy = shuffled.flatMap((f, i) => (i % 3 === 0 ? [f, f] : [f]));
    const a = await ingestFrames(original);
    const b = await ingestFrames(noisy, { maxChunkBytes: 700 });
    assert.equal(b.summary.tcp.gapBytes, 0);
    assert.ok(b.summary.tcp.duplicateBytes > 0);
    const key = (x: Ingested) =>
      x.conns.map((conn) => [
        conn.open.client,
        joinDirection(conn.data[0]).bytes,
        joinDirection(conn.data[1]).bytes,
      ]);
    assert.deepEqual(key(b), key(a));
    const tcpConn = a.conns.find((x) => x.open.transport === Transport.Tcp)!;
    assert.ok(joinDirection(tcpConn.data[1]).bytes.length > 20_000, "the server stream is the long one");
  });

  it("ingest - options out of range are refused by name", async () => {
    await withTempStore(async (store) => {
      for (const [bad, name] of [
        [{ tapperId: "bad id" }, "tapperId"],
        [{ maxBlobBytes: 0 }, "maxBlobBytes"],
        [{ maxChunkBytes: 1.5 }, "maxChunkBytes"],
        [{ maxConnections: -1 }, "maxConnections"],
        [{ idleTimeoutNs: 0n }, "idleTimeoutNs"],
        [{ maxBufferedBytesPerDirection: -1 }, "maxBufferedBytesPerDirection"],
      ] as const) {
        await assert.rejects(
          ingestCapture({ capture: new Uint8Array(0), captureName: "x", dataStore: store, ...bad }),
          (err: unknown) =>
            isIngestError(err) &&
            err.code === IngestErrorCode.InvalidOption &&
            err.message.startsWith(`option ${name}:`),
        );
      }
    });
  });
});
