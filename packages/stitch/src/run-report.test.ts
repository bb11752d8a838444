import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  counterProblems,
  type FlowTableCounters,
  MAX_TLS_CONNECTIONS_REPORTED,
  type StitcherCounters,
  sumCounters,
} from "./run-report.js";
import type { TlsConnectionProblem } from "./tls-variant.js";

function counters(connections: TlsConnectionProblem[], outcomes: Record<string, number>): StitcherCounters {
  return {
    flowsTcp: 0,
    flowsUdp: 0,
    flowsFiltered: 0,
    flowsWithoutOpen: 0,
    packets: 0,
    oversizedDatagrams: 0,
    tls: {
      outcomes,
      unsupportedSuites: {},
      cleartextFlows: 0,
      waitedForKeys: 0,
      cleartextBytes: [0, 0],
      keysEmbedded: 0,
      keysNotEmbedded: 0,
      candidateRejections: 0,
      connections,
      connectionsNotListed: 0,
    },
    timeOrder: { frames: 0, lateFrames: 0, capReleases: 0, peakHeldBytes: 0 },
  };
}

const noTable = {} as FlowTableCounters;

function conn(i: number, outcome = "integrity-failure"): TlsConnectionProblem {
  return {
    connId: `c${i}`,
    flow: `10.0.0.1:${1000 + i} -> 10.0.0.2:443`,
    outcome,
    detail: "server: aead-tag",
    candidatesRejected: 0,
  };
}

describe("stitch - run report", () => {
  it("run report - each connection that did not decrypt is a problem with its id and flow", () => {
    const problems = counterProblems(
      counters(
        [
          conn(1),
          {
            connId: "c2",
            flow: "10.0.0.1:1002 -> 10.0.0.2:443",
            outcome: "candidate-rejected",
            candidatesRejected: 1,
          },
        ],
        {
          "integrity-failure": 1,
        },
      ),
      noTable,
    );
    assert.deepEqual(problems, [
      {
        blob: "connection c1",
        kind: "tls-integrity-failure",
        message:
          "10.0.0.1:1001 -> 10.0.0.2:443: did not decrypt with the keys given (wrong keys) (server: aead-tag)",
      },
      {
        blob: "connection c2",
        kind: "tls-candidate-rejected",
        message:
          "10.0.0.1:1002 -> 10.0.0.2:443: decrypted with a later candidate: its client random was logged with other secrets too; 1 candidate secret set(s) of its client random failed",
      },
    ]);
  });

  it("run report - past the list, the rest is one counted problem", () => {
    const n = MAX_TLS_CONNECTIONS_REPORTED + 5;
    const list = Array.from({ length: MAX_TLS_CONNECTIONS_REPORTED }, (_, i) => conn(i, "no-keys"));
    const problems = counterProblems(counters(list, { "no-keys": n }), noTable);
    assert.equal(problems.length, MAX_TLS_CONNECTIONS_REPORTED + 1);
    assert.deepEqual(problems.at(-1), {
      blob: "(run)",
      kind: "tls-no-keys",
      message: "and 5 more TLS connection(s) had no keys",
    });
  });

  it("run report - workers' lists are joined, their counts added (nothing counted twice)", () => {
    const a = counters([conn(1)], { "integrity-failure": 1, decrypted: 3 });
    const b = counters([conn(2)], { "integrity-failure": 1, decrypted: 4 });
    const sum = sumCounters([a, b]);
    assert.deepEqual(
      sum.tls.connections?.map((c) => c.connId),
      ["c1", "c2"],
    );
    assert.deepEqual(sum.tls.outcomes, { "integrity-failure": 2, decrypted: 7 });
    assert.deepEqual(sum.tls.cleartextBytes, [0, 0]);
    assert.equal(counterProblems(sum, noTable).length, 2);
  });
});
