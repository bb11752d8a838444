import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildTcpSegment, encodeTcpOptions } from "./build.js";
import { transportChecksum } from "./checksum.js";
import { isMalformedPacketError, PacketErrorCode } from "./errors.js";
import { parseTcp, parseTcpOptions, TcpFlag, tcpFlagsToString } from "./tcp.js";

const a = Uint8Array.of(10, 0, 0, 1);
const b = Uint8Array.of(10, 0, 0, 2);

function assertCode(fn: () => unknown, layer: string, code: string): void {
  assert.throws(
    fn,
    (err: unknown) => isMalformedPacketError(err) && err.layer === layer && err.code === code,
  );
}

describe("tcp", () => {
  it("tcp - header fields and payload view", () => {
    const payload = new TextEncoder().encode("hello");
    const bytes = buildTcpSegment({
      sourceAddress: a,
      destinationAddress: b,
      sourcePort: 40000,
      destinationPort: 443,
      sequenceNumber: 0xfffffff0,
      acknowledgmentNumber: 7,
      flags: TcpFlag.Psh | TcpFlag.Ack,
      window: 501,
      payload,
    });
    assert.equal(transportChecksum(a, b, 6, bytes), 0, "builder fills the checksum");
    const s = parseTcp(bytes);
    assert.equal(s.sourcePort, 40000);
    assert.equal(s.destinationPort, 443);
    assert.equal(s.sequenceNumber, 0xfffffff0);
    assert.equal(s.acknowledgmentNumber, 7);
    assert.equal(s.flags, TcpFlag.Psh | TcpFlag.Ack);
    assert.equal(s.window, 501);
    assert.equal(s.headerLength, 20);
    assert.deepEqual(s.payload, payload);
    assert.equal(s.payload.buffer, bytes.buffer);
  });

  it("tcp - flag names", () => {
    assert.equal(tcpFlagsToString(TcpFlag.Syn | TcpFlag.Ack), "SYN|ACK");
    assert.equal(tcpFlagsToString(TcpFlag.Fin | TcpFlag.Ack | TcpFlag.Ae), "FIN|ACK|AE");
    assert.equal(tcpFlagsToString(0), "");
  });

  it("tcp - SYN options: MSS, SACK permitted, timestamps, window scale", () => {
    const options = encodeTcpOptions({
      mss: 1460,
      sackPermitted: true,
      timestamps: { value: 0xdeadbeef, echoReply: 0 },
      windowScale: 7,
    });
    assert.equal(options.length, 20);
    const s = parseTcp(
      buildTcpSegment({
        sourceAddress: a,
        destinationAddress: b,
        sourcePort: 1,
        destinationPort: 2,
        sequenceNumber: 1,
        flags: TcpFlag.Syn,
        options,
      }),
    );
    assert.equal(s.headerLength, 40);
    assert.deepEqual(parseTcpOptions(s.options), {
      mss: 1460,
      windowScale: 7,
      sackPermitted: true,
      sackBlocks: [],
      timestamps: { value: 0xdeadbeef, echoReply: 0 },
    });
  });

  it("tcp - SACK blocks, unknown options skipped, End of List stops", () => {
    const options = Uint8Array.of(1, 1, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20, 30, 4, 9, 9, 0, 2, 4, 0x05, 0xb4);
    const parsed = parseTcpOptions(options);
    assert.deepEqual(parsed.sackBlocks, [{ left: 10, right: 20 }]);
    assert.equal(parsed.mss, undefined, "bytes after End of Option List are ignored");
  });

  const badOptions: { name: string; bytes: number[] }[] = [
    { name: "no length byte", bytes: [2] },
    { name: "length below 2", bytes: [2, 1, 0, 0] },
    { name: "length past the end", bytes: [2, 8, 0, 0] },
    { name: "MSS of length 3", bytes: [2, 3, 0, 1, 1, 1, 1, 1] },
    { name: "window scale of length 4", bytes: [3, 4, 0, 0] },
    { name: "SACK of length 6", bytes: [5, 6, 0, 0, 0, 0, 1, 1] },
    { name: "timestamps of length 8", bytes: [8, 8, 0, 0, 0, 0, 0, 0] },
  ];
  for (const c of badOptions) {
    it(`tcp - option error: ${c.name}`, () => {
      assertCode(() => parseTcpOptions(Uint8Array.from(c.bytes)), "tcp-options", PacketErrorCode.BadOption);
    });
  }

  it("tcp - malformed headers", () => {
    const good = buildTcpSegment({
      sourceAddress: a,
      destinationAddress: b,
      sourcePort: 1,
      destinationPort: 2,
      sequenceNumber: 1,
      flags: 0,
    });
    assertCode(() => parseTcp(good.subarray(0, 19)), "tcp", PacketErrorCode.Truncated);
    const small = good.slice();
    small[12] = 0x40;
    assertCode(() => parseTcp(small), "tcp", PacketErrorCode.BadHeaderLength);
    const big = good.slice();
    big[12] = 0x60;
    assertCode(() => parseTcp(big), "tcp", PacketErrorCode.Truncated);
  });
});
