import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  createCtapWriter,
  Direction,
  MemorySink,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import { parseKeyLog } from "@cloudtap/tls";
import { Inventory, ProblemKind } from "./inventory.js";

const open = (id: string): ConnOpenRecord => ({
  type: "conn-open",
  connId: id,
  timestampNs: 1_000n,
  transport: Transport.Tcp,
  ipVersion: 4,
  client: { address: "10.0.0.1", port: 50000 },
  server: { address: "192.0.2.1", port: 443 },
  midstream: false,
  tcp: {},
  attributes: { user: "bob@example.com" },
});
const data = (id: string, direction: Direction, offset: number, length: number): TapRecord => ({
  type: "data",
  connId: id,
  direction,
  offset,
  timestampNs: 2_000n + BigInt(offset),
  spanNs: 0,
  payload: new Uint8Array(length).fill(offset & 0xff),
});
const close = (id: string, c2s: number, s2c: number): TapRecord => ({
  type: "conn-close",
  connId: id,
  timestampNs: 9_000n,
  reason: CloseReason.Fin,
  initiator: CloseInitiator.Client,
  bytesClientToServer: c2s,
  bytesServerToClient: s2c,
});

async function blob(records: TapRecord[], seq = 1n): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = createCtapWriter(sink, { tapperId: "t1", sequence: seq, startNs: 1_000n });
  for (const r of records) await w.write(r);
  await w.finish(9_000n);
  return sink.bytes();
}

async function* once(b: Uint8Array) {
  yield b;
}

const A = "a".repeat(32);
const B = "b".repeat(32);

describe("inspect - inventory", () => {
  it("joins a connection spread over blobs in any order, with duplicates, and finds no problem", async () => {
    const inv = new Inventory();
    await inv.addBlob(
      "2",
      once(await blob([data(A, Direction.ClientToServer, 100, 50), close(A, 150, 10)], 2n)),
    );
    await inv.addBlob(
      "1",
      once(
        await blob([
          open(A),
          data(A, Direction.ClientToServer, 0, 100),
          data(A, Direction.ServerToClient, 0, 10),
        ]),
      ),
    );
    await inv.addBlob("1-dup", once(await blob([open(A), data(A, Direction.ClientToServer, 0, 100)])));
    const r = inv.report();
    assert.deepEqual(r.problems, []);
    assert.equal(r.connections.total, 1);
    const c = r.connectionList[0]!;
    assert.equal(c.c2s.bytes, 150);
    assert.equal(c.c2s.duplicateBytes, 100);
    assert.deepEqual(c.c2s.ranges, [[0, 150]]);
    assert.equal(r.blobs, 3);
  });

  it("reports gaps, byte-count mismatches and connections without an open record", async () => {
    const inv = new Inventory();
    await inv.addBlob(
      "1",
      once(await blob([open(A), data(A, 0, 0, 10), data(A, 0, 20, 10), close(A, 30, 5)])),
    );
    await inv.addBlob("2", once(await blob([data(B, 1, 0, 4)])));
    const r = inv.report();
    assert.deepEqual(r.problemCounts, {
      [ProblemKind.Gap]: 2,
      [ProblemKind.ByteCountMismatch]: 1,
      [ProblemKind.MissingOpen]: 1,
    });
    assert.deepEqual(r.connectionList.find((c) => c.connId === A)?.c2s.gaps, [[10, 20]]);
    assert.deepEqual(r.connectionList.find((c) => c.connId === A)?.s2c.gaps, [[0, 5]]);
    // report() derives connection problems anew each time, it does not accumulate them
    assert.equal(inv.report().problems.length, r.problems.length);
  });

  it("keeps what a damaged blob holds and names the damage", async () => {
    const good = await blob([open(A), data(A, 0, 0, 100), close(A, 100, 0)]);
    const inv = new Inventory();
    await inv.addBlob("truncated", once(good.subarray(0, good.length - 20)));
    const corrupt = good.slice();
    corrupt[good.length - 40 - 60]! ^= 0x40; // inside the data payload: that frame is skipped
    await inv.addBlob("corrupt", once(corrupt));
    await inv.addBlob("garbage", once(new TextEncoder().encode("not a blob at all")));
    const r = inv.report();
    assert.equal(r.problemCounts[ProblemKind.TruncatedBlob], 1);
    assert.equal(r.problemCounts[ProblemKind.CorruptFrames], 1);
    assert.equal(r.problemCounts[ProblemKind.BadBlob], 1);
    assert.equal(r.connectionList[0]?.c2s.bytes, 100);
    assert.deepEqual(
      r.blobList.map((b) => [b.key, b.complete]),
      [
        ["truncated", false],
        ["corrupt", false],
        ["garbage", false],
      ],
    );
  });

  it("counts key log lines by label without keeping secrets, and flags malformed lines", () => {
    const inv = new Inventory();
    const rnd = "ab".repeat(32);
    inv.addKeyLog(
      "k1",
      `# comment\r\nCLIENT_RANDOM ${rnd} ${"cd".repeat(48)}\rSERVER_TRAFFIC_SECRET_0 ${rnd} ${"ef".repeat(32)}\n\nbogus line\n`,
    );
    const r = inv.report();
    assert.deepEqual(r.keyLogs, {
      objects: 1,
      lines: 2,
      byLabel: { CLIENT_RANDOM: 1, SERVER_TRAFFIC_SECRET_0: 1 },
      clientRandoms: 1,
      malformedLines: 1,
    });
    assert.equal(r.problemCounts[ProblemKind.MalformedKeyLog], 1);
    assert.equal(r.problems[0]?.message, "1 line(s) skipped: line 5: field-count");
    assert.ok(!JSON.stringify(r).includes("cdcdcd"), "no secret in the report");
  });

  it("key logs - inspect agrees with the stitcher's parser on every line, and counts past 100 malformed lines", () => {
    const rnd = "ab".repeat(32);
    const lines = [
      `CLIENT_RANDOM ${rnd} ${"cd".repeat(48)}`,
      // Each of these passed inspect's own line pattern before, and the stitcher skipped it.
      `SERVER_TRAFFIC_SECRET_0 ${rnd} 00ff`, // a 2-byte secret
      `CLIENT_RANDOM ${rnd} ${"cd".repeat(47)}`, // 47 bytes of master secret
      `CLIENT_RANDOM ${rnd} ${"c".repeat(95)}`, // odd number of hex digits
      `NOT_A_LABEL ${rnd} ${"cd".repeat(32)}`,
      ...Array.from({ length: 150 }, () => `CLIENT_RANDOM ${rnd} zz`),
    ];
    const text = `${lines.join("\n")}\n`;
    const inv = new Inventory();
    inv.addKeyLog("keys/a.keylog", text);
    const r = inv.report();
    const parsed = parseKeyLog(text);
    assert.equal(r.keyLogs?.lines, parsed.entries.length);
    assert.equal(r.keyLogs?.lines, 1);
    assert.equal(r.keyLogs?.malformedLines, 154);
    const message = r.problems.find((p) => p.kind === ProblemKind.MalformedKeyLog)?.message ?? "";
    assert.match(
      message,
      /^154 line\(s\) skipped: line 2: bad-secret-length \(SERVER_TRAFFIC_SECRET_0\); line 3: /,
    );
    assert.match(message, /and 144 more$/);
    assert.equal(r.problems[0]?.where, "keys/a.keylog");
  });
});
