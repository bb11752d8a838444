/**
 * Fuzzing the stitch stage with mutants of simulator blobs and key logs, against a strict oracle:
 * - every connection the mutation did not touch comes out byte for byte as in the clean run (its frames, per
 *   variant: the original and, with keys, the cleartext flow);
 * - a mutant that lost anything (a connection missing or different) reports at least one problem;
 * - nothing throws.
 * "Touched": a connection with a record in a frame whose bytes the mutation changed (or cut off), or whose
 * key-log lines it changed. Which mutants run is drawn from a seeded PRNG; a failure prints the seed and the
 * mutant's number, and `CLOUDTAP_FUZZ_SEED` replays it. `CLOUDTAP_FUZZ_ITERATIONS` sets how many (default
 * 2000, the CI run; `pnpm fuzz` runs 50000).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BlobSource } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import {
  decodePacket,
  type FlowAwareFrameSink,
  type FrameFlowContext,
  type FrameSink,
  TcpFlag,
} from "@cloudtap/packet";
import {
  dataPrefix,
  keysPrefix,
  parseBlobKey,
  peekFrame,
  peekHeader,
  readCtapBytes,
} from "@cloudtap/tap-format";
import { runSimulation, type SimulationManifest } from "@cloudtap/tapsim";
import { createKeyStore } from "@cloudtap/tls";
import { addKeyLogs } from "./key-logs.js";
import { counterProblems, flowTableCountersOf, stitcherCountersOf } from "./run-report.js";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";

const ITERATIONS = Number(process.env["CLOUDTAP_FUZZ_ITERATIONS"] ?? 2000);
const SEED = Number(process.env["CLOUDTAP_FUZZ_SEED"] ?? 0x5eed_0011);

/** xorshift32: small, seeded, the same on every machine. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { next, below: (n: number) => next() % n, chance: (p: number) => next() / 2 ** 32 < p };
}

interface CleanBlob {
  readonly key: string;
  readonly bytes: Uint8Array;
  /** Byte ranges of the frames (records and blob-end) and the connection of each record frame. */
  readonly frames: readonly { start: number; end: number; connId: string | undefined }[];
  readonly headerEnd: number;
}

interface Corpus {
  readonly blobs: readonly CleanBlob[];
  readonly keyLogs: readonly { key: string; text: string }[];
  readonly randomOf: ReadonlyMap<string, string>;
}

/**
 * Per flow (connection id and variant) and direction: a digest of what its packets carry, in order (TCP
 * payload and FIN/RST, UDP payloads). Not the packets' other bytes: a made-up handshake or teardown is
 * stamped where the time order stands, which lost records of other connections move, and TCP timestamp
 * options carry that time.
 */
class DigestSink implements FlowAwareFrameSink {
  readonly digests = new Map<string, ReturnType<typeof createHash>>();
  private scratch = new Uint8Array(65536);
  begin(length: number): Uint8Array {
    if (this.scratch.length < length) this.scratch = new Uint8Array(length);
    return this.scratch.subarray(0, length);
  }
  commit(): void {}
  forFlow(flow: FrameFlowContext): FrameSink {
    const digests = this.digests;
    const digest = (dir: number) => {
      const id = `${flow.connId}/${flow.variant}/${dir}`;
      let hash = digests.get(id);
      if (!hash) {
        hash = createHash("sha256");
        digests.set(id, hash);
      }
      return hash;
    };
    let buf = new Uint8Array(2048);
    let len = 0;
    return {
      begin(length: number) {
        if (buf.length < length) buf = new Uint8Array(length);
        len = length;
        return buf.subarray(0, length);
      },
      commit() {
        const t = decodePacket(1, buf.subarray(0, len)).transport;
        if (!t) return;
        if (t.protocol === "tcp") {
          const seg = t.segment;
          const h = digest(seg.sourcePort === flow.client.port ? 0 : 1);
          h.update(seg.payload);
          if (seg.flags & (TcpFlag.Fin | TcpFlag.Rst))
            h.update(`[${seg.flags & (TcpFlag.Fin | TcpFlag.Rst)}]`);
        } else {
          const d = t.datagram;
          digest(d.sourcePort === flow.client.port ? 0 : 1)
            .update(d.payload)
            .update("|");
        }
      },
    };
  }
  drain(): Uint8Array[] {
    return [];
  }
  flush(): Uint8Array[] {
    return [];
  }
  result(): Map<string, string> {
    return new Map([...this.digests].map(([k, h]) => [k, h.copy().digest("hex")]));
  }
}

async function stitch(
  blobs: readonly { key: string; bytes: Uint8Array }[],
  keyLogs: readonly { key: string; text: string }[],
) {
  const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
  const added = addKeyLogs(keys, keyLogs);
  const sink = new DigestSink();
  const stitcher = new Stitcher({ sink, tls: { keys, variant: "both" } });
  const sources: BlobSource[] = blobs.map((b) => ({
    key: b.key,
    kind: "data",
    size: b.bytes.length,
    readBytes: async () => b.bytes,
    read: async function* () {
      yield b.bytes;
    },
  }));
  const job = await runStitchJob({
    blobs: (async function* () {
      yield* sources;
    })(),
    stitcher,
    output: sink,
    sink: { write: () => {} },
  });
  const problems = [
    ...added.problems,
    ...job.problems,
    ...counterProblems(stitcherCountersOf(stitcher), flowTableCountersOf(stitcher)),
  ];
  return { flows: sink.result(), problems };
}

/** Frame boundaries of a clean blob and the connection of each record. */
async function frameMap(bytes: Uint8Array): Promise<{ headerEnd: number; frames: CleanBlob["frames"] }> {
  const head = peekHeader(bytes);
  assert.equal(head.kind, "header");
  const headerEnd = head.kind === "header" ? head.size : 0;
  const records = [];
  for await (const i of readCtapBytes(bytes))
    if (i.type !== "header" && i.type !== "blob-end") records.push(i);
  const frames: { start: number; end: number; connId: string | undefined }[] = [];
  let at = headerEnd;
  let r = 0;
  while (at < bytes.length) {
    const f = peekFrame(bytes.subarray(at));
    assert.equal(f.kind, "frame");
    if (f.kind !== "frame") break;
    const item = f.type === 0x00ff ? undefined : records[r++];
    frames.push({
      start: at,
      end: at + f.size,
      connId: item && "connId" in item ? item.connId : undefined,
    });
    at += f.size;
    if (f.type === 0x00ff) break;
  }
  assert.equal(r, records.length, "one frame per record");
  return { headerEnd, frames };
}

type Mutant = {
  readonly what: string;
  readonly blobs: readonly { key: string; bytes: Uint8Array }[];
  readonly keyLogs: readonly { key: string; text: string }[];
  /** Connections the mutation may change; undefined: any (the whole blob's header was hit). */
  readonly touched: Set<string>;
};

function mutate(corpus: Corpus, rnd: ReturnType<typeof prng>): Mutant {
  const blobs = corpus.blobs.map((b) => ({ key: b.key, bytes: b.bytes }));
  const keyLogs = corpus.keyLogs.map((k) => ({ ...k }));
  const touched = new Set<string>();
  const touch = (b: CleanBlob, from: number, to: number) => {
    if (from < b.headerEnd) for (const f of b.frames) if (f.connId) touched.add(f.connId);
    for (const f of b.frames) if (f.connId && f.start < to && f.end > from) touched.add(f.connId);
  };
  const whats: string[] = [];
  const steps = 1 + rnd.below(3);
  for (let s = 0; s < steps; s++) {
    const kind = rnd.below(10);
    if (kind < 7) {
      const i = rnd.below(blobs.length);
      const clean = corpus.blobs[i]!;
      const bytes = blobs[i]!.bytes.slice();
      const at = rnd.below(bytes.length);
      // Offsets of a blob an earlier step shortened or lengthened no longer match the clean frame map.
      if (bytes.length !== clean.bytes.length) touch(clean, 0, clean.bytes.length);
      switch (kind) {
        case 0:
        case 1:
        case 2: {
          // Flip 1-4 bytes close together (a bad sector, a bit flip in transit).
          const n = 1 + rnd.below(4);
          for (let k = 0; k < n && at + k < bytes.length; k++) bytes[at + k]! ^= 1 + rnd.below(255);
          touch(clean, at, at + n);
          blobs[i] = { key: clean.key, bytes };
          whats.push(`flip ${n} at ${clean.key.slice(-16)}+${at}`);
          break;
        }
        case 3: {
          // Cut the object short (an interrupted upload).
          touch(clean, at, bytes.length);
          blobs[i] = { key: clean.key, bytes: bytes.subarray(0, at) };
          whats.push(`truncate ${clean.key.slice(-16)} at ${at}`);
          break;
        }
        case 4: {
          // Bytes inserted (a duplicated run of the blob itself).
          const n = 1 + rnd.below(64);
          const from = rnd.below(bytes.length);
          const ins = bytes.subarray(from, Math.min(bytes.length, from + n));
          const out = new Uint8Array(bytes.length + ins.length);
          out.set(bytes.subarray(0, at));
          out.set(ins, at);
          out.set(bytes.subarray(at), at + ins.length);
          touch(clean, at, at + 1);
          // An insertion at a frame boundary lands in the frame before it, as the reader sees it.
          touch(clean, at - 1, at);
          blobs[i] = { key: clean.key, bytes: out };
          whats.push(`insert ${ins.length} at ${clean.key.slice(-16)}+${at}`);
          break;
        }
        case 5: {
          // Bytes removed.
          const n = 1 + rnd.below(64);
          const out = new Uint8Array(bytes.length - Math.min(n, bytes.length - at));
          out.set(bytes.subarray(0, at));
          out.set(bytes.subarray(at + n), at);
          touch(clean, at, at + n);
          blobs[i] = { key: clean.key, bytes: out };
          whats.push(`delete ${n} at ${clean.key.slice(-16)}+${at}`);
          break;
        }
        default: {
          // A run of one byte value over a stretch (the resync scan's worst case).
          const n = 1 + rnd.below(4096);
          bytes.fill(0xc7, at, at + n);
          touch(clean, at, at + n);
          blobs[i] = { key: clean.key, bytes };
          whats.push(`fill ${n}x c7 at ${clean.key.slice(-16)}+${at}`);
        }
      }
    } else {
      const i = rnd.below(keyLogs.length);
      const lines = keyLogs[i]!.text.split("\n");
      const l = rnd.below(lines.length);
      const line = lines[l] ?? "";
      const random = line.split(" ")[1]?.toLowerCase();
      const conn = random === undefined ? undefined : corpus.randomOf.get(random);
      if (conn) touched.add(conn);
      if (kind === 7 && line.length > 0) {
        const c = rnd.below(line.length);
        lines[l] = line.slice(0, c) + String.fromCharCode(0x21 + rnd.below(90)) + line.slice(c + 1);
        whats.push(`key-log char ${c} of line ${l + 1}`);
      } else if (kind === 8) {
        lines.splice(l, 1);
        whats.push(`key-log line ${l + 1} removed`);
      } else {
        // The same label and client random again with another secret: a second candidate.
        lines.splice(
          l,
          0,
          line.replace(/[0-9a-f]$/i, (d) => (d === "0" ? "1" : "0")),
        );
        whats.push(`key-log line ${l + 1} logged twice, the first copy wrong`);
      }
      keyLogs[i] = { key: keyLogs[i]!.key, text: lines.join("\n") };
    }
  }
  return { what: whats.join("; "), blobs, keyLogs, touched };
}

describe("stitch - fuzzing blobs and key logs (strict oracle)", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-fuzz-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let corpus: Corpus;
  let clean: Map<string, string>;
  let manifest: SimulationManifest;

  before(async () => {
    const store = openStore(dir);
    ({ manifest } = await runSimulation({
      dataStore: store,
      keyStore: store,
      connections: 8,
      seed: 11,
      blobSize: 16 * 1024,
      faults: {},
    }));
    const blobs: CleanBlob[] = [];
    for await (const o of store.list(dataPrefix(""))) {
      if (parseBlobKey(o.key)?.kind !== "data") continue;
      const bytes = await store.readBytes(o.key);
      blobs.push({ key: o.key, bytes, ...(await frameMap(bytes)) });
    }
    blobs.sort((a, b) => (parseBlobKey(a.key)!.startNs < parseBlobKey(b.key)!.startNs ? -1 : 1));
    const keyLogs: { key: string; text: string }[] = [];
    for await (const o of store.list(keysPrefix("")))
      keyLogs.push({ key: o.key, text: new TextDecoder().decode(await store.readBytes(o.key)) });
    const randomOf = new Map(
      manifest.connections
        .filter((c) => c.tls !== null)
        .map((c) => [c.tls!.clientRandom.toLowerCase(), c.connId] as const),
    );
    corpus = { blobs, keyLogs, randomOf };
  });

  it("fuzz - the clean corpus stitches without a problem, every connection decrypted", async () => {
    const run = await stitch(corpus.blobs, corpus.keyLogs);
    assert.deepEqual(run.problems, []);
    clean = run.flows;
    assert.ok(corpus.blobs.length >= 3, `${corpus.blobs.length} blobs`);
    const tls = manifest.connections.filter((c) => c.tls !== null);
    assert.ok(tls.length > 0);
    for (const c of tls) assert.ok(clean.has(`${c.connId}/cleartext/1`), `${c.connId} decrypts`);
  });

  it(`fuzz - ${ITERATIONS} mutants: untouched connections come out identical, every loss is a named problem`, async () => {
    assert.ok(clean, "the clean run ran");
    const rnd = prng(SEED);
    let lossy = 0;
    for (let n = 0; n < ITERATIONS; n++) {
      const m = mutate(corpus, rnd);
      const where = `seed ${SEED} (CLOUDTAP_FUZZ_SEED), mutant ${n}: ${m.what}`;
      let run: Awaited<ReturnType<typeof stitch>>;
      try {
        run = await stitch(m.blobs, m.keyLogs);
      } catch (err) {
        assert.fail(`${where}: threw ${err instanceof Error ? err.stack : String(err)}`);
      }
      let lost = false;
      for (const [flow, digest] of clean) {
        const got = run.flows.get(flow);
        if (got === digest) continue;
        lost = true;
        const connId = flow.slice(0, flow.indexOf("/"));
        assert.ok(m.touched.has(connId), `${where}: untouched flow ${flow} changed`);
      }
      for (const flow of run.flows.keys()) {
        if (clean.has(flow)) continue;
        lost = true;
        assert.ok(m.touched.has(flow.slice(0, flow.indexOf("/"))), `${where}: a new flow ${flow}`);
      }
      if (lost) {
        lossy++;
        assert.ok(run.problems.length > 0, `${where}: something was lost and the run says problems: none`);
      }
    }
    assert.ok(lossy > ITERATIONS / 4, `${lossy} of ${ITERATIONS} mutants lost something`);
  });
});
