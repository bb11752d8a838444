import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildUdpDatagram } from "./build.js";
import { transportChecksum } from "./checksum.js";
import { isMalformedPacketError, PacketErrorCode } from "./errors.js";
import { parseUdp } from "./udp.js";

const a = Uint8Array.of(10, 0, 0, 1);
const b = Uint8Array.of(10, 0, 0, 2);

describe("udp", () => {
  it("udp - fields, payload cut to the length field", () => {
    const payload = Uint8Array.of(1, 2, 3);
    const bytes = buildUdpDatagram({
      sourceAddress: a,
      destinationAddress: b,
      sourcePort: 5353,
      destinationPort: 53,
      payload,
    });
    assert.equal(transportChecksum(a, b, 17, bytes), 0);
    const padded = new Uint8Array(bytes.length + 5);
    padded.set(bytes);
    const d = parseUdp(padded);
    assert.equal(d.sourcePort, 5353);
    assert.equal(d.destinationPort, 53);
    assert.equal(d.length, 11);
    assert.deepEqual(d.payload, payload);
    assert.equal(d.truncated, false);
    const short = parseUdp(bytes.subarray(0, 9));
    assert.equal(short.truncated, true);
    assert.deepEqual(short.payload, payload.subarray(0, 1));
  });

  it("udp - malformed datagrams", () => {
    assert.throws(
      () => parseUdp(new Uint8Array(7)),
      (e: unknown) => isMalformedPacketError(e) && e.code === PacketErrorCode.Truncated,
    );
    const bad = Uint8Array.of(0, 1, 0, 2, 0, 7, 0, 0);
    assert.throws(
      () => parseUdp(bad),
      (e: unknown) => isMalformedPacketError(e) && e.code === PacketErrorCode.BadLength && e.offset === 4,
    );
  });
});
