/**
 * Decryption throughput of application data through a TlsSession, against a raw node:crypto loop over the
 * same records. MB = 10^6 bytes of plaintext.
 *
 * - decoder: records pushed into a session that already finished its handshake, in 64 KiB chunks (records
 *   straddle chunk boundaries, as they do in tapped data), the plaintext delivered to a no-op callback.
 * - raw: per record createDecipheriv + setAAD + setAuthTag + update + final with a precomputed nonce (for
 *   CBC: createDecipheriv + update + final, then an HMAC over 13 header bytes and the content, the work of the
 *   MAC check): the floor any decoder built on node:crypto pays. The raw loop keeps no plaintext.
 *
 * TLS_BENCH_MS sets the time per measurement and side (default 1000 ms, in 5 alternating rounds).
 */
import { createDecipheriv, createHmac } from "node:crypto";
import { getCipherSuite } from "./cipher-suites.js";
import { deriveTls12KeyBlock, deriveTls13TrafficKeys } from "./key-schedule.js";
import { createKeyStore } from "./key-store.js";
import { recyclePlaintext } from "./native-aead.js";
import { type SyntheticConnection, tls12Connection, tls13Connection } from "./test-connections.js";
import { pattern } from "./test-records.js";
import { createTlsSession } from "./tls-session.js";

export interface TlsBenchResult {
  name: string;
  value: number;
  unit: string;
  detail?: string;
}

const BUDGET_MS = Number(process.env["TLS_BENCH_MS"] ?? 1000);
const CHUNK = 64 * 1024;

interface Case {
  readonly name: string;
  readonly suite: number;
  readonly tls13: boolean;
}

const CASES: readonly Case[] = [
  { name: "TLS 1.3 AES-128-GCM", suite: 0x1301, tls13: true },
  { name: "TLS 1.3 AES-256-GCM", suite: 0x1302, tls13: true },
  { name: "TLS 1.3 ChaCha20-Poly1305", suite: 0x1303, tls13: true },
  { name: "TLS 1.2 AES-128-CBC-SHA256", suite: 0xc027, tls13: false },
];

/**
 * MB/s of `a` and `b` (each processing `bytes` of plaintext per call): alternating rounds of TLS_BENCH_MS / 5
 * each, so that both see the same machine state; the median round of each is reported.
 */
function measurePair(bytes: number, a: () => void, b: () => void): [number, number] {
  a();
  b(); // warm-up
  const rates: [number[], number[]] = [[], []];
  for (let round = 0; round < 5; round++) {
    for (const [i, once] of [a, b].entries()) {
      let done = 0;
      const start = process.hrtime.bigint();
      let elapsed = 0;
      while (elapsed < BUDGET_MS / 5 || done === 0) {
        once();
        done += bytes;
        elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      }
      rates[i]!.push(done / 1e6 / (elapsed / 1000));
    }
  }
  const median = (r: number[]) => r.sort((x, y) => x - y)[Math.floor(r.length / 2)]!;
  return [median(rates[0]), median(rates[1])];
}

function records(conn: SyntheticConnection, size: number, count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(conn.sealServer(23, pattern(size, i)));
  return out;
}

function chunked(recordsBytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < recordsBytes.length; at += CHUNK) out.push(recordsBytes.subarray(at, at + CHUNK));
  return out;
}

/** A session past the handshake, ready for the server's application records. */
function readySession(conn: SyntheticConnection, sink: (n: number) => void) {
  const keys = createKeyStore();
  keys.addKeyLog(conn.keyLog, 0);
  // The consumer gives each plaintext back once used, as the stitcher's cleartext variant does.
  const session = createTlsSession({
    keys,
    output: {
      applicationData: (_d, p) => {
        sink(p.length);
        recyclePlaintext(p);
      },
    },
  });
  for (const r of conn.c2s) session.push(0, r);
  for (const r of conn.s2c) session.push(1, r);
  return session;
}

function benchCase(c: Case, size: number): TlsBenchResult[] {
  const count = Math.max(16, Math.ceil((4 * 1024 * 1024) / size));
  const conn = c.tls13 ? tls13Connection({ suite: c.suite }) : tls12Connection({ suite: c.suite });
  const recs = records(conn, size, count);
  const chunks = chunked(Buffer.concat(recs));
  const plaintextBytes = size * count;
  let delivered = 0;
  // Each call replays the connection into a fresh session: the handshake, then the application records.
  const decoder = () => {
    const session = readySession(conn, (n) => {
      delivered += n;
    });
    for (const chunk of chunks) session.push(1, chunk);
    if (session.outcome.kind !== "decrypted")
      throw new Error(`bench session: ${JSON.stringify(session.outcome)}`);
  };
  const [viaDecoder, raw] = measurePair(plaintextBytes, decoder, rawLoop(c, recs, conn));
  if (delivered === 0) throw new Error("bench: nothing decrypted");
  const label = `${c.name} ${size === 16384 ? "16 KiB" : `${size} B`} records`;
  return [
    {
      name: `${label}: decoder`,
      value: viaDecoder,
      unit: "MB/s",
      detail: `${((100 * viaDecoder) / raw).toFixed(0)}% of raw`,
    },
    { name: `${label}: raw node:crypto`, value: raw, unit: "MB/s" },
  ];
}

/** The raw per-record loop for the server's records of `conn`, keys derived outside the timing. */
function rawLoop(c: Case, recs: Buffer[], conn: SyntheticConnection): () => void {
  const suite = getCipherSuite(c.suite)!;
  const nodeName = suite.cipher.nodeName as "aes-128-gcm";
  if (c.tls13) {
    const secret = /SERVER_TRAFFIC_SECRET_0 \S+ (\S+)/.exec(conn.keyLog)![1]!;
    const { key, iv } = deriveTls13TrafficKeys(suite, Buffer.from(secret, "hex"));
    // tls13Connection's server sent a ticket (sequence 0), 3 records (1-3) and an alert (4).
    const first = 5;
    const nonces = recs.map((_, i) => {
      const n = Buffer.from(iv);
      n.writeUInt32BE((n.readUInt32BE(8) ^ (first + i)) >>> 0, 8);
      return n;
    });
    // Views are taken outside the timing: the raw loop does only the crypto calls.
    const parts = recs.map((rec) => ({
      aad: rec.subarray(0, 5),
      ciphertext: rec.subarray(5, rec.length - 16),
      tag: rec.subarray(rec.length - 16),
    }));
    return () => {
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        const d = createDecipheriv(nodeName, key, nonces[i]!, { authTagLength: 16 });
        d.setAAD(p.aad);
        d.setAuthTag(p.tag);
        d.update(p.ciphertext);
        d.final();
      }
    };
  }
  const master = /CLIENT_RANDOM \S+ (\S+)/.exec(conn.keyLog)![1]!;
  const cr = conn.clientRandom;
  const sr = pattern(32, 2); // tls12Connection's server random for seed 1
  const { server } = deriveTls12KeyBlock(0x0303, suite, Buffer.from(master, "hex"), cr, sr);
  const macLength = 32;
  const parts = recs.map((rec) => ({
    header: rec.subarray(0, 13),
    iv: rec.subarray(5, 21),
    body: rec.subarray(21),
  }));
  return () => {
    for (const p of parts) {
      const d = createDecipheriv(suite.cipher.nodeName, server.key, p.iv);
      d.setAutoPadding(false);
      const out = d.update(p.body);
      d.final();
      const pad = out[out.length - 1]!;
      const contentLength = out.length - pad - 1 - macLength;
      createHmac("sha256", server.macKey).update(p.header).update(out.subarray(0, contentLength)).digest();
    }
  };
}

export async function benchTlsDecrypt(): Promise<TlsBenchResult[]> {
  const results: TlsBenchResult[] = [];
  for (const c of CASES) {
    for (const size of [16384, 1400]) results.push(...benchCase(c, size));
  }
  return results;
}
