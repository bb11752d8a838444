/**
 * The TLS-aware output of one TCP flow: the original packets, the cleartext variant, or both.
 *
 * - original: the tapped bytes as they are. With keys, the flow's TLS key-log lines are handed to
 *   `embedKeys` as soon as its ClientHello (and so its client random) is seen, before any packet the keys
 *   decrypt; parsing stops there.
 * - cleartext: for a connection that decrypts, a second TCP flow whose payload per direction is exactly the
 *   decrypted application data (no record headers, handshake, padding or MACs), same client address and
 *   port, server port mapped (443 -> 80, ...), with its own handshake at the original's open time and the
 *   original's teardown. A connection that is not TLS is passed through as it is (it already is clear text);
 *   one that is TLS but cannot be decrypted produces no cleartext flow (its outcome says why).
 * - both: the original flow, plus the cleartext flow of every connection that decrypts.
 * A flow that is not TLS is "plain" (its bytes are its clear text): in cleartext it goes out labelled
 * cleartext, in both labelled original and plain, so that a sink with separate feeds (tunnel VNIs) gives it
 * to both and each feed is complete. Until the first bytes tell (cleartext and both), they are held.
 */
import {
  createTlsSession,
  recyclePlaintext,
  type TlsKeySource,
  TlsOutcomeKind,
  type TlsSecrets,
  type TlsSession,
} from "@cloudtap/tls";
import type { TcpSynth } from "./tcp-synth.js";

export const Variant = { Original: "original", Cleartext: "cleartext", Both: "both" } as const;
export type Variant = (typeof Variant)[keyof typeof Variant];

/** Where the cleartext variant of a TLS port goes. Other TLS ports map to `DEFAULT_CLEARTEXT_PORT`. */
export const DEFAULT_CLEARTEXT_PORTS: Readonly<Record<number, number>> = {
  443: 80,
  8443: 8080,
  465: 25,
  993: 143,
  995: 110,
  636: 389,
  853: 53,
  990: 21,
  5061: 5060,
};
export const DEFAULT_CLEARTEXT_PORT = 80;
export const DEFAULT_MAX_KEY_WAIT_BYTES = 16 * 1024 * 1024;

export interface TlsVariantOptions {
  readonly variant: Variant;
  readonly keys: TlsKeySource;
  /** Receives NSS key-log text for one connection, to embed before its packets (a pcapng DSB). */
  readonly embedKeys?: (keyLogText: string) => void;
  /** Maps an original server port to the cleartext flow's server port. */
  readonly cleartextPort: (serverPort: number) => number;
  /** Cap on bytes kept of a connection's first chunks while deciding whether it is TLS. Default 64 KiB. */
  readonly maxUndecidedBytes?: number;
  /** Cap on a connection's ciphertext queued while its keys have not landed. Default 16 MiB. */
  readonly maxKeyWaitBytes?: number;
}

export class TlsVariantStats {
  /** Connections by TLS outcome (`decrypted`, `no-keys`, `not-tls`, `unsupported-suite`, ...). */
  readonly outcomes: Record<string, number> = {};
  /** Unsupported suites by name. */
  readonly unsupportedSuites: Record<string, number> = {};
  cleartextFlows = 0;
  /** Connections that ended while waiting for their keys (whether the keys came or not). */
  waitedForKeys = 0;
  /** Decrypted application bytes per direction. */
  cleartextBytes: [number, number] = [0, 0];
  keysEmbedded = 0;
}

export interface TlsFlowReport {
  readonly version: string | undefined;
  readonly suite: string | undefined;
  readonly serverName: string | undefined;
  readonly alpn: string | undefined;
  readonly outcome: string;
  readonly detail: string | undefined;
  readonly cleartext: boolean;
}

const LABEL_ORDER = [
  "CLIENT_RANDOM",
  "CLIENT_EARLY_TRAFFIC_SECRET",
  "EARLY_EXPORTER_SECRET",
  "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
  "SERVER_HANDSHAKE_TRAFFIC_SECRET",
  "CLIENT_TRAFFIC_SECRET_0",
  "SERVER_TRAFFIC_SECRET_0",
  "EXPORTER_SECRET",
] as const;

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** The NSS key-log lines of one connection. */
export function keyLogLines(clientRandom: Uint8Array, secrets: TlsSecrets): string {
  const cr = hex(clientRandom);
  const lines: string[] = [];
  const known = new Set<string>(LABEL_ORDER);
  for (const label of LABEL_ORDER) {
    const v = secrets[label];
    if (v) lines.push(`${label} ${cr} ${hex(v)}`);
  }
  for (const [label, v] of Object.entries(secrets)) {
    if (!known.has(label) && v) lines.push(`${label} ${cr} ${hex(v)}`);
  }
  return lines.length ? `${lines.join("\n")}\n` : "";
}

export function createCleartextPortMap(
  overrides: Readonly<Record<number, number>> = {},
  fallback: number = DEFAULT_CLEARTEXT_PORT,
): (serverPort: number) => number {
  const map = { ...DEFAULT_CLEARTEXT_PORTS, ...overrides };
  return (port) => map[port] ?? fallback;
}

type End = { how: "fin" | "rst" | "none"; initiator: 0 | 1; timestampNs: bigint };

/** Where several plaintext records of one chunk are joined (valid during one synthesizer call only). */
let joinScratch = new Uint8Array(64 * 1024);

/**
 * Feeds one flow's in-order stream events to its TLS session and to the variants' synthesizers.
 * `makeOriginal` / `makeCleartext` create a synthesizer (with its handshake already sent) on first need;
 * `makeOriginal(plain)`: true when the flow is known not to be TLS.
 */

export class TlsFlowVariants {
  private original: TcpSynth | undefined;
  private cleartext: TcpSynth | undefined;
  private session: TlsSession | undefined;
  /** Until the first bytes tell whether this is TLS (cleartext variant only): copies, to pass through. */
  private undecided: { dir: 0 | 1; bytes: Uint8Array; ts: bigint; span: number }[] | undefined;
  private undecidedBytes = 0;
  private keysEmbedded = false;
  private pending: [Uint8Array[], Uint8Array[]] = [[], []];
  private report: TlsFlowReport | undefined;

  constructor(
    private readonly o: TlsVariantOptions,
    private readonly stats: TlsVariantStats,
    private readonly makeOriginal: (plain: boolean) => TcpSynth,
    private readonly makeCleartext: () => TcpSynth,
  ) {
    if (o.variant === Variant.Original) this.original = makeOriginal(false);
    else this.undecided = [];
    this.session = createTlsSession({
      keys: o.keys,
      maxBufferedBytes: o.maxKeyWaitBytes ?? DEFAULT_MAX_KEY_WAIT_BYTES,
      output: {
        applicationData: (direction, plaintext) => {
          if (this.o.variant !== Variant.Original) this.pending[direction].push(plaintext);
        },
      },
    });
  }

  data(dir: 0 | 1, bytes: Uint8Array, ts: bigint, spanNs: number): void {
    this.original?.data(dir, bytes, ts, spanNs);
    const session = this.session;
    if (!session) return;
    if (this.undecided) {
      this.undecided.push({ dir, bytes: bytes.slice(), ts, span: spanNs });
      this.undecidedBytes += bytes.length;
    }
    session.push(dir, bytes);
    if (!this.keysEmbedded) this.embedKeys(session);
    if (this.o.variant === Variant.Original) {
      // Parsing was only for the client random: once the keys are embedded, or the flow is known to be
      // something else, the session has nothing left to do.
      if (this.keysEmbedded || session.outcome.kind === TlsOutcomeKind.NotTls) this.stop(session);
      return;
    }
    if (this.undecided) this.decide(session);
    // Decrypted data is stamped when the chunk that completed its records ends (at or just after the
    // ciphertext), in both directions: a push may release the other side's records too (they waited for
    // this side's handshake).
    if (this.pending[0].length > 0 || this.pending[1].length > 0) {
      const end = spanNs > 0 ? ts + BigInt(spanNs) : ts;
      this.flushCleartext(dir, end);
      this.flushCleartext((1 - dir) as 0 | 1, end);
    }
  }

  /** A hole: the original flow's sequence jumps; the TLS session stops that direction (no cleartext after it). */
  gap(dir: 0 | 1, length: number): void {
    // A hole before the flow could be classified (cleartext variant): pass the flow through as original.
    if (this.undecided) this.passThrough(false);
    this.original?.gap(dir, length);
    this.session?.gap(dir, length);
  }

  /** True while the TLS session holds records it cannot decrypt until more secrets arrive. */
  get waitingForKeys(): boolean {
    return (
      this.session !== undefined &&
      this.session.pendingKeys !== undefined &&
      this.o.variant !== Variant.Original
    );
  }

  /** Secrets may have arrived: decrypt what waited for them, and write the cleartext it yields at `ts`. */
  keysAvailable(ts: bigint): void {
    const session = this.session;
    if (!session) return;
    session.keysAvailable();
    this.flushCleartext(0, ts);
    this.flushCleartext(1, ts);
  }

  /** Stop waiting for secrets: what cannot be decrypted now is reported as `no-keys`. */
  giveUpKeys(): void {
    this.session?.giveUpKeys();
  }

  end(e: End): TlsFlowReport | undefined {
    const session = this.session;
    if (session) {
      session.finish();
      if (this.undecided) this.passThrough(session.outcome.kind === TlsOutcomeKind.NotTls);
      this.flushCleartext(0, e.timestampNs);
      this.flushCleartext(1, e.timestampNs);
      this.stop(session);
    }
    this.original?.end(e.how, e.initiator, e.timestampNs);
    this.cleartext?.end(e.how, e.initiator, e.timestampNs);
    return this.report;
  }

  release(): void {
    this.original?.release();
    this.cleartext?.release();
  }

  private stop(session: TlsSession): void {
    if (this.session !== session) return;
    this.session = undefined;
    session.finish();
    const outcome = session.outcome;
    const info = session.info;
    if (this.o.variant !== Variant.Original) {
      this.stats.outcomes[outcome.kind] = (this.stats.outcomes[outcome.kind] ?? 0) + 1;
      if (outcome.kind === TlsOutcomeKind.UnsupportedSuite && info.cipherSuiteName) {
        this.stats.unsupportedSuites[info.cipherSuiteName] =
          (this.stats.unsupportedSuites[info.cipherSuiteName] ?? 0) + 1;
      }
    }
    this.report = {
      version: info.versionName,
      suite: info.cipherSuiteName,
      serverName: info.serverName,
      alpn: info.alpn,
      outcome:
        this.o.variant === Variant.Original && outcome.kind !== TlsOutcomeKind.NotTls
          ? "not-decrypted"
          : outcome.kind,
      detail: outcome.detail,
      cleartext: this.cleartext !== undefined,
    };
  }

  private embedKeys(session: TlsSession): void {
    const cr = session.info.clientRandom;
    if (!cr || !this.o.embedKeys || !this.original) return;
    const secrets = this.o.keys.lookup(cr);
    if (!secrets) return;
    const text = keyLogLines(cr, secrets);
    if (!text) return;
    this.o.embedKeys(text);
    this.keysEmbedded = true;
    this.stats.keysEmbedded++;
  }

  /** Cleartext variant: is this TLS? Not TLS: pass the flow through as it is. */
  private decide(session: TlsSession): void {
    if (session.outcome.kind === TlsOutcomeKind.NotTls) {
      this.passThrough(true);
      this.stop(session);
      return;
    }
    if (
      session.info.clientRandom !== undefined ||
      this.undecidedBytes > (this.o.maxUndecidedBytes ?? 64 * 1024)
    ) {
      if (this.o.variant === Variant.Both) {
        // TLS: the original flow starts now, its keys embedded before its first encrypted packet.
        const held = this.undecided!;
        this.undecided = undefined;
        this.undecidedBytes = 0;
        this.original = this.makeOriginal(false);
        this.embedKeys(session);
        for (const h of held) this.original.data(h.dir, h.bytes, h.ts, h.span);
        return;
      }
      this.undecided = undefined;
      this.undecidedBytes = 0;
    }
  }

  private passThrough(plain: boolean): void {
    const held = this.undecided;
    if (!held) return;
    this.undecided = undefined;
    this.undecidedBytes = 0;
    if (!this.original) this.original = this.makeOriginal(plain);
    for (const h of held) this.original.data(h.dir, h.bytes, h.ts, h.span);
  }

  private flushCleartext(dir: 0 | 1, ts: bigint): void {
    const parts = this.pending[dir];
    if (parts.length === 0) return;
    this.pending[dir] = [];
    let bytes: Uint8Array;
    if (parts.length === 1) bytes = parts[0]!;
    else {
      // Joined in a shared scratch buffer: the synthesizer copies the bytes into frames during the call.
      const total = parts.reduce((n, p) => n + p.length, 0);
      if (joinScratch.length < total) joinScratch = new Uint8Array(2 ** Math.ceil(Math.log2(total)));
      bytes = joinScratch.subarray(0, total);
      let at = 0;
      for (const p of parts) {
        bytes.set(p, at);
        at += p.length;
      }
    }
    if (bytes.length === 0) return;
    if (!this.cleartext) {
      this.cleartext = this.makeCleartext();
      this.stats.cleartextFlows++;
    }
    this.stats.cleartextBytes[dir] += bytes.length;
    this.cleartext.data(dir, bytes, ts, 0);
    // The synthesizer copied the bytes into frames: the record buffers can be reused.
    for (const p of parts) recyclePlaintext(p);
  }
}
