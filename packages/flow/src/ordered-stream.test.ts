import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OrderedStream, type StreamOutput } from "./ordered-stream.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

type Step =
  | { in: [offset: number, text: string]; hold?: boolean; want: string[] }
  | { releaseHole: true; want: string[] }
  | { finish: number | undefined; want: string[] };

function recorder(): StreamOutput & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    data: (_d, offset, bytes) => events.push(`${offset}:${dec.decode(bytes)}`),
    gap: (_d, offset, length) => events.push(`gap ${offset}+${length}`),
  };
}

function run(steps: Step[]): OrderedStream {
  const s = new OrderedStream();
  steps.forEach((step, i) => {
    const out = recorder();
    if ("in" in step) s.accept(step.in[0], enc.encode(step.in[1]), BigInt(i), 0, step.hold ? undefined : out);
    else if ("releaseHole" in step) s.releaseHole(out);
    else s.finish(out, step.finish, 99n);
    assert.deepEqual(out.events, step.want, `step ${i}: ${JSON.stringify(step)}`);
  });
  return s;
}

describe("flow - ordered stream", () => {
  it("releases in-order chunks at once", () => {
    const s = run([
      { in: [0, "abc"], want: ["0:abc"] },
      { in: [3, "def"], want: ["3:def"] },
    ]);
    assert.equal(s.bufferedBytes, 0);
  });

  it("holds out-of-order chunks until the hole fills", () => {
    const s = run([
      { in: [6, "ghi"], want: [] },
      { in: [3, "def"], want: [] },
      { in: [0, "abc"], want: ["0:abc", "3:def", "6:ghi"] },
    ]);
    assert.equal(s.bufferedBytes, 0);
    assert.equal(s.next, 9);
  });

  it("drops duplicates and trims retransmissions that overlap released bytes", () => {
    const s = run([
      { in: [0, "abcdef"], want: ["0:abcdef"] },
      { in: [0, "abc"], want: [] },
      { in: [4, "efgh"], want: ["6:gh"] },
    ]);
    assert.equal(s.duplicateBytes, 5);
  });

  it("resolves overlaps among buffered chunks first-seen-wins and counts differing bytes", () => {
    const s = run([
      { in: [4, "EFGH"], want: [] },
      { in: [2, "cdXYZj"], want: [] }, // [4,8) overlaps "EFGH": 4 bytes, all differ; only [2,4) is new
      { in: [0, "ab"], want: ["0:ab", "2:cd", "4:EFGH"] },
    ]);
    assert.equal(s.overlapMismatchBytes, 4);
    assert.equal(s.duplicateBytes, 4);
  });

  it("fills several holes from one chunk that spans them", () => {
    run([
      { in: [2, "c"], want: [] },
      { in: [5, "f"], want: [] },
      { in: [1, "BCDEFG"], want: [] },
      { in: [0, "a"], want: ["0:a", "1:B", "2:c", "3:DE", "5:f", "6:G"] },
    ]);
  });

  it("buffers everything while held, then drains in order", () => {
    const s = new OrderedStream();
    s.accept(0, enc.encode("ab"), 1n, 0, undefined);
    s.accept(2, enc.encode("cd"), 2n, 0, undefined);
    assert.equal(s.bufferedBytes, 4);
    const out = recorder();
    s.drain(out);
    assert.deepEqual(out.events, ["0:ab", "2:cd"]);
    assert.equal(s.bufferedBytes, 0);
  });

  it("reports a hole as a gap only when told, and a missing tail against the known total", () => {
    const s = run([
      { in: [0, "ab"], want: ["0:ab"] },
      { in: [5, "fg"], want: [] },
      { in: [10, "k"], want: [] },
      { releaseHole: true, want: ["gap 2+3", "5:fg"] },
      { finish: 15, want: ["gap 7+3", "10:k", "gap 11+4"] },
    ]);
    assert.equal(s.gapCount, 3);
    assert.equal(s.gapBytes, 10);
    assert.equal(s.bufferedBytes, 0);
  });

  it("emits views of in-order input, copies of buffered input", () => {
    const s = new OrderedStream();
    const input = enc.encode("abcdef");
    let seen: Uint8Array | undefined;
    s.accept(0, input, 0n, 0, {
      data: (_d, _o, b) => {
        seen = b;
      },
      gap: () => {},
    });
    assert.equal(seen?.buffer, input.buffer);
    const later = enc.encode("xyz");
    s.accept(10, later, 0n, 0, { data: () => {}, gap: () => {} });
    later.fill(0);
    const out = recorder();
    s.finish(out, undefined, 0n);
    assert.deepEqual(out.events, ["gap 6+4", "10:xyz"]);
  });
});
