/**
 * The UDP transports against a real socket on loopback: every datagram arrives whole and in order per
 * source port, from the slot's port; refusals and ICMP reports are counted. Run for node:dgram and, when it
 * was built at install, the native sendmmsg/GSO sender.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { after, describe, it } from "node:test";
import { DatagramBatch, type DatagramTransport } from "./datagram-batch.js";
import { loadNativeSender } from "./native-sender.js";
import { createUdpTransport } from "./udp-transport.js";

const mechanisms = loadNativeSender().sender ? (["dgram", "sendmmsg"] as const) : (["dgram"] as const);

/** A batch of datagrams: runs of equal sizes (GSO material), odd sizes, several slots. */
function batch(): { b: DatagramBatch; expected: { slot: number; bytes: Uint8Array }[] } {
  const b = new DatagramBatch(0, 1 << 20, 1024, false);
  const expected: { slot: number; bytes: Uint8Array }[] = [];
  const sizes = [...Array(40).fill(1400), 700, ...Array(10).fill(1400), 33, 1, 9000, ...Array(30).fill(512)];
  for (const [i, size] of sizes.entries()) {
    const slot = i < 60 ? 0 : i % 3;
    const at = b.used;
    for (let k = 0; k < size; k++) b.bytes[at + k] = (i * 7 + k) & 0xff;
    b.offsets[b.count] = at;
    b.lengths[b.count] = size;
    b.slots[b.count] = slot;
    b.count++;
    b.used += size;
    expected.push({ slot, bytes: b.bytes.slice(at, at + size) });
  }
  return { b, expected };
}

describe("egress - UDP transports", () => {
  const sockets: Socket[] = [];
  const transports: DatagramTransport[] = [];
  // Closed even when a test fails, so that no socket keeps the test process alive.
  after(async () => {
    for (const s of sockets) s.close();
    for (const t of transports) await t.close();
  });

  for (const mechanism of mechanisms) {
    it(`egress - ${mechanism}: every datagram arrives whole, in order per slot, from the slot's source port`, async () => {
      const rx = createSocket({ type: "udp4", recvBufferSize: 8 << 20 });
      sockets.push(rx);
      await new Promise<void>((r) => rx.bind(0, "127.0.0.1", r));
      const got: { port: number; bytes: Uint8Array }[] = [];
      rx.on("message", (m, rinfo) => got.push({ port: rinfo.port, bytes: Uint8Array.from(m) }));
      const t = await createUdpTransport({
        targets: [{ address: "127.0.0.1", port: rx.address().port }],
        slots: 3,
        mechanism,
      });
      transports.push(t);
      assert.equal(t.mechanism, mechanism, "the mechanism asked for");
      const { b, expected } = batch();
      await t.send(b, 0, b.count);
      for (let i = 0; i < 100 && got.length < expected.length; i++)
        await new Promise((r) => setTimeout(r, 10));
      const ports = t.sourcePorts(0);
      assert.equal(new Set(ports).size, 3, "one source port per slot");
      for (const slot of [0, 1, 2]) {
        const want = expected.filter((e) => e.slot === slot).map((e) => e.bytes);
        const have = got.filter((g) => g.port === ports[slot]).map((g) => g.bytes);
        assert.equal(have.length, want.length, `slot ${slot}: count`);
        assert.ok(
          have.every((h, i) => Buffer.compare(h, want[i]!) === 0),
          `slot ${slot}: every datagram whole and in order`,
        );
      }
      const st = t.stats(0);
      assert.equal(st.datagrams, expected.length, "counted as sent");
      assert.equal(
        st.bytes,
        expected.reduce((n, e) => n + e.bytes.length, 0),
        "bytes counted",
      );
    });

    it(`egress - ${mechanism}: an IPv6 target`, async () => {
      const rx = createSocket({ type: "udp6" });
      sockets.push(rx);
      await new Promise<void>((r) => rx.bind(0, "::1", r));
      const got: Uint8Array[] = [];
      rx.on("message", (m) => got.push(Uint8Array.from(m)));
      const t = await createUdpTransport({
        targets: [{ address: "::1", port: rx.address().port }],
        slots: 3,
        mechanism,
      });
      transports.push(t);
      const { b, expected } = batch();
      await t.send(b, 0, b.count);
      for (let i = 0; i < 100 && got.length < expected.length; i++)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(got.length, expected.length, "every datagram arrived over IPv6");
      assert.equal(
        got.reduce((n, g) => n + g.length, 0),
        expected.reduce((n, e) => n + e.bytes.length, 0),
        "whole",
      );
    });

    it(`egress - ${mechanism}: a closed port is counted (refused sends or ICMP reports), sending goes on`, async () => {
      const probe = createSocket("udp4");
      await new Promise<void>((r) => probe.bind(0, "127.0.0.1", r));
      const port = probe.address().port;
      await new Promise<void>((r) => probe.close(() => r())); // nothing listens there now
      const t = await createUdpTransport({ targets: [{ address: "127.0.0.1", port }], slots: 3, mechanism });
      transports.push(t);
      const { b } = batch();
      for (let round = 0; round < 5; round++) {
        await t.send(b, 0, b.count);
        await new Promise((r) => setTimeout(r, 5));
      }
      const st = t.stats(0);
      const refused = Object.values(st.errors).reduce((x, y) => x + y, 0);
      const reports = Object.values(st.unreachable).reduce((x, y) => x + y, 0);
      assert.ok(
        (st.errors["ECONNREFUSED"] ?? 0) + (st.unreachable["ECONNREFUSED"] ?? 0) > 0,
        `counted: ${JSON.stringify(st)}`,
      );
      assert.equal(st.datagrams + refused, 5 * b.count, "every datagram sent or refused");
      if (mechanism === "sendmmsg") assert.ok(reports > 0, "the native sender reads the ICMP reports");
    });
  }
});
