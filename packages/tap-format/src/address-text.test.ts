// Endpoint addresses of conn-open records as text: tap-format has no parser or printer of its own, it uses
// @cloudtap/packet's (strict IPv4 octets, RFC 5952 printing). The cases are the ones on which tap-format's
// former copy disagreed with packet's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIpAddress, parseIpAddress } from "@cloudtap/packet";
import { type ConnOpenRecord, createCtapWriter, MemorySink, readCtapBytes } from "./index.js";
import { SAMPLE_CONN_V4, SAMPLE_CONN_V6 } from "./test-records.js";

const START = 1_764_000_000_000_000_000n;

async function blobOf(open: ConnOpenRecord): Promise<Uint8Array> {
  const sink = new MemorySink();
  const writer = createCtapWriter(sink, { tapperId: "gw-test-1", sequence: 1n, startNs: START });
  await writer.write(open);
  await writer.finish(START + 1_000_000n);
  return sink.bytes();
}

async function readOpen(blob: Uint8Array): Promise<ConnOpenRecord> {
  for await (const item of readCtapBytes(blob)) if (item.type === "conn-open") return item;
  throw new Error("no conn-open record in the blob");
}

describe("tap-format - address text", () => {
  it("tap-format - a conn-open with a leading-zero IPv4 octet is refused (the former parser read 010 as 10)", async () => {
    const open = { ...SAMPLE_CONN_V4, client: { address: "010.20.30.40", port: 51234 } };
    await assert.rejects(blobOf(open), RangeError);
  });

  it("tap-format - an IPv4-mapped IPv6 endpoint reads back as ::ffff:a.b.c.d (the former printer wrote ::ffff:a0b:c0d)", async () => {
    const hexForm = { ...SAMPLE_CONN_V6, client: { address: "::ffff:102:304", port: 40000 } };
    const quadForm = { ...SAMPLE_CONN_V6, client: { address: "::ffff:1.2.3.4", port: 40000 } };
    const hexBlob = await blobOf(hexForm);
    // The same address in either text form encodes to the same bytes.
    assert.deepEqual(await blobOf(quadForm), hexBlob);
    const back = await readOpen(hexBlob);
    assert.equal(back.client.address, "::ffff:1.2.3.4");
    assert.equal(back.server.address, formatIpAddress(parseIpAddress(SAMPLE_CONN_V6.server.address)));
  });

  it("tap-format - IPv4 endpoints read back as packet prints them", async () => {
    const back = await readOpen(await blobOf(SAMPLE_CONN_V4));
    assert.equal(back.client.address, SAMPLE_CONN_V4.client.address);
    assert.equal(back.server.address, formatIpAddress(parseIpAddress(SAMPLE_CONN_V4.server.address)));
  });
});
