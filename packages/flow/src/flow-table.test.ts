import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  type Direction,
  type TapRecord,
  Transport,
} from "@cloudtap/tap-format";
import {
  CompletionReason,
  type FlowCompletion,
  type FlowInfo,
  FlowTable,
  type FlowTableOptions,
} from "./flow-table.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const S = 1_000_000_000n;

const open = (id: string, ts = 0n, transport: Transport = Transport.Tcp): ConnOpenRecord => ({
  type: "conn-open",
  connId: id,
  timestampNs: ts,
  transport,
  ipVersion: 4,
  client: { address: "10.0.0.1", port: 50000 },
  server: { address: "192.0.2.1", port: 443 },
  midstream: false,
  tcp: {},
  attributes: {},
});
const data = (id: string, direction: Direction, offset: number, text: string, ts = 0n): TapRecord => ({
  type: "data",
  connId: id,
  direction,
  offset,
  timestampNs: ts,
  spanNs: 0,
  payload: enc.encode(text),
});
const close = (id: string, c2s: number, s2c: number, ts = 0n): TapRecord => ({
  type: "conn-close",
  connId: id,
  timestampNs: ts,
  reason: CloseReason.Fin,
  initiator: CloseInitiator.Client,
  bytesClientToServer: c2s,
  bytesServerToClient: s2c,
});

const A = "a".repeat(32);
const B = "b".repeat(32);

function harness(options: FlowTableOptions = {}, accept: (f: FlowInfo) => boolean = () => true) {
  const log: string[] = [];
  const completions = new Map<string, FlowCompletion>();
  const table = new FlowTable(
    {
      create(flow) {
        log.push(`create ${flow.connId[0]} open=${flow.open !== undefined}`);
        if (!accept(flow)) return undefined;
        const c = flow.connId[0];
        return {
          onData: (d, o, b) => log.push(`${c} ${d} ${o}:${dec.decode(b)}`),
          onDatagram: (d, i, b) => log.push(`${c} ${d} #${i}:${dec.decode(b)}`),
          onGap: (d, o, l) => log.push(`${c} ${d} gap ${o}+${l}`),
          onComplete: (x) => {
            log.push(`${c} complete ${x.reason}`);
            completions.set(flow.connId, x);
          },
        };
      },
    },
    options,
  );
  return { table, log, completions };
}

describe("flow - flow table", () => {
  it("orders a connection spread over blobs in any order and completes it when the close totals are met", () => {
    const { table, log, completions } = harness();
    for (const r of [
      data(A, 1, 3, "DEF", 3n),
      close(A, 6, 6, 9n),
      data(A, 0, 0, "abc", 1n),
      open(A),
      data(A, 1, 0, "ABC", 2n),
      data(A, 0, 3, "def", 4n),
      data(A, 0, 3, "def", 4n),
    ]) {
      table.accept(r);
    }
    assert.deepEqual(log, [
      "create a open=true",
      "a 0 0:abc",
      "a 1 0:ABC",
      "a 1 3:DEF",
      "a 0 3:def",
      "a complete closed",
    ]);
    assert.equal(table.stats.lateRecords, 1, "the duplicate after completion is recognised as late");
    assert.equal(completions.get(A)?.directions[0].bytes, 6);
    assert.equal(table.stats.bufferedBytes, 0);
    assert.equal(table.size, 0);
  });

  it("tells per direction whether bytes wait behind a hole, while the flow lasts", () => {
    let info: FlowInfo | undefined;
    const waiting = () => [info!.holes.waiting(0), info!.holes.waiting(1)];
    const table = new FlowTable({
      create(flow) {
        info = flow;
        return { onData: () => {}, onDatagram: () => {}, onGap: () => {}, onComplete: () => {} };
      },
    });
    table.accept(open(A));
    assert.deepEqual(waiting(), [false, false]);
    table.accept(data(A, 1, 3, "DEF", 3n));
    assert.deepEqual(waiting(), [false, true], "server bytes behind a hole");
    table.accept(data(A, 0, 0, "abc", 1n));
    assert.deepEqual(waiting(), [false, true], "in-order client bytes wait for nothing");
    table.accept(data(A, 1, 0, "ABC", 2n));
    assert.deepEqual(waiting(), [false, false], "the hole is filled");
  });

  it("releases a hole as a gap once it has waited gapWaitNs of record time", () => {
    const { table, log } = harness({ gapWaitNs: 5n * S });
    table.accept(open(A));
    table.accept(data(A, 0, 0, "ab", 1n * S));
    table.accept(data(A, 0, 4, "ef", 2n * S));
    table.flushOlderThan(6n * S);
    assert.deepEqual(log.slice(1), ["a 0 0:ab"]);
    table.flushOlderThan(7n * S);
    assert.deepEqual(log.slice(1), ["a 0 0:ab", "a 0 gap 2+2", "a 0 4:ef"]);
    assert.equal(table.stats.gaps, 1);
    assert.equal(table.stats.gapBytes, 2);
  });

  it("applies idle timeouts per state", () => {
    const { table, log } = harness({
      newTimeoutNs: 10n * S,
      establishedTimeoutNs: 100n * S,
      closingTimeoutNs: 20n * S,
    });
    table.accept(data(A, 0, 0, "orphan", 1n * S)); // never opened
    table.accept(open(B, 1n * S));
    table.accept(data(B, 0, 0, "x", 1n * S));
    table.accept(close(B, 5, 0, 2n * S)); // closing, 4 bytes missing
    table.flushOlderThan(11n * S);
    assert.deepEqual(log, [
      "create b open=true",
      "b 0 0:x",
      "create a open=false",
      "a 0 0:orphan",
      "a complete never-opened",
    ]);
    table.flushOlderThan(22n * S);
    assert.deepEqual(log.slice(5), ["b 0 gap 1+4", "b complete closed-incomplete"]);
    assert.equal(table.stats.completed["never-opened"], 1);
    assert.equal(table.stats.completed["closed-incomplete"], 1);
  });

  it("evicts the least recently active flow at maxFlows (evict-oldest), or drops the new one (drop-new)", () => {
    const evict = harness({ maxFlows: 1 });
    evict.table.accept(open(A));
    evict.table.accept(open(B));
    assert.deepEqual(evict.log, ["create a open=true", "a complete evicted", "create b open=true"]);
    assert.equal(evict.table.stats.completed.evicted, 1);
    const drop = harness({ maxFlows: 1, flowOverflow: "drop-new" });
    drop.table.accept(open(A));
    drop.table.accept(open(B));
    assert.equal(drop.table.stats.droppedNewFlows, 1);
    assert.equal(drop.table.size, 1);
  });

  it("caps buffered bytes per flow: release-gap gives up the hole, drop-data drops the chunk", () => {
    const rg = harness({ maxBufferedBytesPerFlow: 4 });
    rg.table.accept(open(A));
    rg.table.accept(data(A, 0, 2, "cd"));
    rg.table.accept(data(A, 0, 6, "ghi"));
    assert.deepEqual(rg.log.slice(1), ["a 0 gap 0+2", "a 0 2:cd"]);
    assert.equal(rg.table.stats.perFlowCapHits, 1);
    assert.ok(rg.table.stats.bufferedBytes <= 4);
    const dd = harness({ maxBufferedBytesPerFlow: 4, bufferOverflow: "drop-data" });
    dd.table.accept(open(A));
    dd.table.accept(data(A, 0, 2, "cd"));
    dd.table.accept(data(A, 0, 6, "ghi"));
    assert.equal(dd.table.stats.droppedBytes, 3);
    assert.equal(dd.table.stats.bufferedBytes, 2);
  });

  it("caps buffered bytes across flows by releasing the holes of the least recently active flows", () => {
    const { table, log } = harness({ maxBufferedBytesTotal: 5 });
    table.accept(open(A));
    table.accept(open(B));
    table.accept(data(A, 0, 1, "bcd"));
    table.accept(data(B, 0, 1, "BCD"));
    assert.ok(table.stats.bufferedBytes <= 5);
    assert.equal(table.stats.totalCapHits, 1);
    assert.deepEqual(log.slice(2), ["a 0 gap 0+1", "a 0 1:bcd"]);
  });

  it("drops the records of flows the handler ignores, and counts them", () => {
    const { table, log } = harness({}, (f) => f.connId !== B);
    table.accept(data(B, 0, 0, "held"));
    table.accept(open(B));
    table.accept(data(B, 0, 4, "more"));
    assert.deepEqual(log, ["create b open=true"]);
    assert.equal(table.stats.flowsIgnored, 1);
    assert.equal(table.stats.recordsIgnored, 1);
    assert.equal(table.stats.bufferedBytes, 0);
  });

  it("de-duplicates datagrams by index and holds them until the flow opens", () => {
    const { table, log } = harness();
    const dg = (i: number, text: string): TapRecord => ({
      type: "datagram",
      connId: A,
      direction: 0,
      index: i,
      timestampNs: 0n,
      payload: enc.encode(text),
    });
    table.accept(dg(0, "q1"));
    table.accept(dg(0, "q1"));
    table.accept(open(A, 0n, Transport.Udp));
    table.accept(dg(1, "q2"));
    table.flushAll();
    assert.deepEqual(log, ["create a open=true", "a 0 #0:q1", "a 0 #1:q2", "a complete flushed"]);
    assert.equal(table.stats.duplicateDatagrams, 1);
  });

  it("flushAll completes everything, reporting missing tails against close totals", () => {
    const { table, log, completions } = harness();
    table.accept(open(A));
    table.accept(data(A, 0, 0, "abc"));
    table.accept(close(A, 10, 0));
    table.flushAll();
    assert.deepEqual(log.slice(1), ["a 0 0:abc", "a 0 gap 3+7", "a complete closed-incomplete"]);
    assert.equal(completions.get(A)?.reason, CompletionReason.ClosedIncomplete);
    assert.equal(completions.get(A)?.directions[0].gapBytes, 7);
  });
});
