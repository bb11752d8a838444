import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ReassembledChunk, type ReassemblyCounters, StreamReassembler } from "./stream-reassembler.js";

interface Step {
  /** Offset and text of a segment; `t` its capture time (default: its index). */
  readonly at: number;
  readonly data: string;
  readonly t?: number;
}

interface Emitted {
  readonly at: number;
  readonly data: string;
  readonly t: number;
  readonly span?: number;
}

interface Case {
  readonly name: string;
  readonly in: readonly Step[];
  /** What is emitted by the inserts alone, before `finish`. */
  readonly want: readonly Emitted[];
  /** What `finish` adds. */
  readonly wantAtFinish?: readonly Emitted[];
  readonly counters?: Partial<ReassemblyCounters>;
  readonly maxChunkBytes?: number;
  readonly maxBufferedBytes?: number;
}

const text = new TextEncoder();
const str = new TextDecoder();

const cases: Case[] = [
  {
    name: "in order segments coalesce into one chunk",
    in: [
      { at: 0, data: "GET " },
      { at: 4, data: "/ HTTP/1.1" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "GET / HTTP/1.1", t: 0, span: 1 }],
  },
  {
    name: "chunks are cut at maxChunkBytes",
    maxChunkBytes: 4,
    in: [
      { at: 0, data: "abcdef" },
      { at: 6, data: "ghij" },
    ],
    want: [
      { at: 0, data: "abcd", t: 0 },
      { at: 4, data: "efgh", t: 0, span: 1 },
    ],
    wantAtFinish: [{ at: 8, data: "ij", t: 1 }],
  },
  {
    name: "exact retransmission is dropped",
    in: [
      { at: 0, data: "hello" },
      { at: 0, data: "hello" },
      { at: 5, data: "!" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "hello!", t: 0, span: 2 }],
    counters: { duplicateBytes: 5 },
  },
  {
    name: "out of order segment waits for the hole",
    in: [
      { at: 0, data: "aa" },
      { at: 4, data: "cc" },
      { at: 2, data: "bb" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "aabbcc", t: 0, span: 2 }],
    counters: { duplicateBytes: 0, gapBytes: 0 },
  },
  {
    name: "first seen wins on overlap with delivered data",
    in: [
      { at: 0, data: "abcd" },
      { at: 2, data: "XXef" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "abcdef", t: 0, span: 1 }],
    counters: { duplicateBytes: 2 },
  },
  {
    name: "first seen wins on overlap with waiting data, on both sides",
    in: [
      { at: 4, data: "EF" },
      { at: 8, data: "IJ" },
      { at: 2, data: "cdXXghXXk" },
      { at: 0, data: "ab" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "abcdEFghIJk", t: 0, span: 3 }], // seen between t=0 and t=3
    counters: { duplicateBytes: 4 },
  },
  {
    name: "a segment inside a waiting one is all duplicate",
    in: [
      { at: 2, data: "cdef" },
      { at: 3, data: "Z" },
      { at: 0, data: "ab" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "abcdef", t: 0, span: 2 }],
    counters: { duplicateBytes: 1 },
  },
  {
    name: "a hole that never fills stays visible at finish",
    in: [
      { at: 0, data: "ab" },
      { at: 5, data: "fg" },
      { at: 9, data: "j" },
    ],
    want: [],
    wantAtFinish: [
      { at: 0, data: "ab", t: 0 },
      { at: 5, data: "fg", t: 1 },
      { at: 9, data: "j", t: 2 },
    ],
    counters: { gapBytes: 5 },
  },
  {
    name: "a stream whose start was never seen begins at the first offset it has",
    in: [{ at: 3, data: "def" }],
    want: [],
    wantAtFinish: [{ at: 3, data: "def", t: 0 }],
    counters: { gapBytes: 3 },
  },
  {
    name: "buffer cap: the oldest hole is skipped and data flows on",
    maxBufferedBytes: 3,
    in: [
      { at: 0, data: "a" },
      { at: 2, data: "cc" },
      { at: 5, data: "ff" },
      { at: 7, data: "g" },
      { at: 1, data: "b" },
    ],
    want: [{ at: 0, data: "a", t: 0 }],
    wantAtFinish: [
      { at: 2, data: "cc", t: 1 },
      { at: 5, data: "ffg", t: 2, span: 1 },
    ],
    counters: { bufferOverflows: 1, gapBytes: 2, duplicateBytes: 1 },
  },
  {
    name: "timestamps: the chunk's bytes were seen between t and t + span",
    in: [
      { at: 2, data: "cd", t: 100 },
      { at: 0, data: "ab", t: 250 },
      { at: 4, data: "ef", t: 300 },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "abcdef", t: 100, span: 200 }],
  },
  {
    name: "empty and fully old segments change nothing",
    in: [
      { at: 0, data: "abc" },
      { at: 3, data: "" },
      { at: 1, data: "b" },
    ],
    want: [],
    wantAtFinish: [{ at: 0, data: "abc", t: 0 }],
    counters: { duplicateBytes: 1 },
  },
];

function run(c: Case): { beforeFinish: Emitted[]; atFinish: Emitted[]; counters: ReassemblyCounters } {
  const emitted: ReassembledChunk[] = [];
  const r = new StreamReassembler(
    { maxChunkBytes: c.maxChunkBytes ?? 64, maxBufferedBytes: c.maxBufferedBytes ?? 1024 },
    (chunk) => emitted.push(chunk),
  );
  c.in.forEach((step, i) => {
    // Hand in a view of a larger buffer that is overwritten afterwards: the reassembler must copy.
    const backing = new Uint8Array(step.data.length + 4);
    backing.set(text.encode(step.data), 2);
    r.insert(step.at, backing.subarray(2, 2 + step.data.length), BigInt(step.t ?? i));
    backing.fill(0x58);
  });
  const show = (e: ReassembledChunk): Emitted => ({
    at: e.offset,
    data: str.decode(e.payload),
    t: Number(e.timestampNs),
    span: e.spanNs,
  });
  const beforeFinish = emitted.map(show);
  const count = emitted.length;
  r.finish();
  return { beforeFinish, atFinish: emitted.slice(count).map(show), counters: { ...r.counters } };
}

describe("stream-reassembler", () => {
  for (const c of cases) {
    it(`stream-reassembler - ${c.name}`, () => {
      const got = run(c);
      const norm = (list: readonly Emitted[]) => list.map((e) => ({ ...e, span: e.span ?? 0 }));
      assert.deepEqual(got.beforeFinish, norm(c.want));
      assert.deepEqual(got.atFinish, norm(c.wantAtFinish ?? []));
      for (const [k, v] of Object.entries(c.counters ?? {})) {
        assert.equal(got.counters[k as keyof ReassemblyCounters], v, k);
      }
    });
  }

  it("stream-reassembler - every byte offered is emitted once or counted, under random order", () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const stream = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
    for (let round = 0; round < 20; round++) {
      const segments: { at: number; len: number }[] = [];
      for (let at = 0; at < stream.length; ) {
        const len = 1 + rand(300);
        segments.push({ at, len: Math.min(len, stream.length - at) });
        at += len;
      }
      // Shuffle, duplicate some, and make some overlap.
      const offered = [...segments, ...segments.filter(() => rand(4) === 0)];
      for (let i = offered.length - 1; i > 0; i--) {
        const j = rand(i + 1);
        [offered[i], offered[j]] = [offered[j]!, offered[i]!];
      }
      const chunks: ReassembledChunk[] = [];
      const r = new StreamReassembler({ maxChunkBytes: 512, maxBufferedBytes: 1 << 20 }, (c) =>
        chunks.push(c),
      );
      for (const s of offered) r.insert(s.at, stream.subarray(s.at, s.at + s.len), 0n);
      r.finish();
      const joined = new Uint8Array(chunks.reduce((n, c) => n + c.payload.length, 0));
      let at = 0;
      for (const c of chunks) {
        assert.equal(c.offset, at, "no gaps, no overlaps");
        assert.ok(c.payload.length <= 512);
        joined.set(c.payload, at);
        at += c.payload.length;
      }
      assert.deepEqual(joined, stream);
      const offeredBytes = offered.reduce((n, s) => n + s.len, 0);
      assert.equal(r.counters.duplicateBytes, offeredBytes - stream.length);
      assert.equal(r.counters.gapBytes, 0);
    }
  });

  it("stream-reassembler - rejects bad offsets and use after finish", () => {
    const r = new StreamReassembler({ maxChunkBytes: 8, maxBufferedBytes: 8 }, () => {});
    assert.throws(() => r.insert(-1, Uint8Array.of(1), 0n), RangeError);
    r.finish();
    assert.throws(() => r.insert(0, Uint8Array.of(1), 0n), /after finish/);
    assert.throws(
      () => new StreamReassembler({ maxChunkBytes: 0, maxBufferedBytes: 1 }, () => {}),
      RangeError,
    );
  });
});
