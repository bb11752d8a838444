/**
 * The TLS-aware output of one TCP flow: the original packets, the cleartext variant, or both.
 *
 * - original: the tapped bytes as they are. With `embedKeys`, the flow's TLS key-log lines are handed to it
 *   once a record of the connection authenticated with them (its first encrypted record), never keys that
 *   did not (the connection is listed in `TlsVariantStats.connections`); parsing stops there. So that the
 *   keys still come before every packet they decrypt, while the verdict is out a chunk is given to the
 *   TLS session before its packets are made, and in TLS 1.3 the packets from the ServerHello on are held
 *   until the first encrypted record (the same flight; at most `maxUndecidedBytes`). A connection whose
 *   keys are not known at its ClientHello goes out as it comes, its keys embedded later if they come and
 *   authenticate.
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
  TlsVersion,
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
  /** Which connection this is, to name it when it does not decrypt. */
  readonly connection?: TlsConnectionIdentity;
  /**
   * The flows holding copies of their first chunks (`oldestHeldNs`): each is in the set while it holds some.
   * Those chunks go out later with their own, older, times: a time order must wait for the oldest of them.
   */
  readonly holders?: Set<TlsFlowVariants>;
}

export interface TlsConnectionIdentity {
  readonly connId: string;
  readonly client: { readonly address: string; readonly port: number };
  readonly server: { readonly address: string; readonly port: number };
}

/** A connection whose TLS did not decrypt, or whose key log held candidate secrets that failed. */
export interface TlsConnectionProblem {
  readonly connId: string;
  /** `client -> server`, e.g. `10.0.0.1:50000 -> 10.0.0.2:443`. */
  readonly flow: string;
  /**
   * The TLS outcome (`integrity-failure`, `no-keys`, ...), `keys-not-embedded` (original variant: the keys
   * did not authenticate), or `candidate-rejected` (it decrypted, with a later candidate).
   */
  readonly outcome: string;
  readonly detail?: string;
  /** Candidate secret sets tried before one authenticated (or all failed). */
  readonly candidatesRejected: number;
}

/** Connections listed one by one per stitcher (all are counted in `outcomes`). */
export const MAX_LISTED_TLS_CONNECTIONS = 100;

/** TLS outcomes that lose decrypted content: the connection is listed. */
const LOSSY_OUTCOMES: ReadonlySet<string> = new Set([
  TlsOutcomeKind.IntegrityFailure,
  TlsOutcomeKind.NoKeys,
  TlsOutcomeKind.BufferOverflow,
  TlsOutcomeKind.Malformed,
  TlsOutcomeKind.InternalError,
]);

/** Outcomes after which a session decrypts nothing more: the keys verdict is in. */
const FINAL_OUTCOMES: ReadonlySet<string> = new Set([
  ...LOSSY_OUTCOMES,
  TlsOutcomeKind.NotTls,
  TlsOutcomeKind.UnsupportedSuite,
  TlsOutcomeKind.UnsupportedVersion,
  TlsOutcomeKind.Gap,
  TlsOutcomeKind.NoHandshake,
]);

function endpoint(e: { readonly address: string; readonly port: number }): string {
  return e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
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
  /** Connections with keys that did not authenticate, so not embedded (original flows). */
  keysNotEmbedded = 0;
  /** Connections where a candidate secret set failed (another may have decrypted). */
  candidateRejections = 0;
  /** Connections that did not decrypt or had candidates fail, the first MAX_LISTED_TLS_CONNECTIONS. */
  readonly connections: TlsConnectionProblem[] = [];
  /** Connections beyond the listed ones. */
  connectionsNotListed = 0;

  list(problem: TlsConnectionProblem): void {
    if (this.connections.length < MAX_LISTED_TLS_CONNECTIONS) this.connections.push(problem);
    else this.connectionsNotListed++;
  }
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
  /** Keys to embed are known but not yet authenticated by a record of the connection. */
  private awaitingVerdict: boolean;
  /** TLS 1.3, from the ServerHello until the keys' verdict: the original's chunks, copied. */
  private deferred: { dir: 0 | 1; bytes: Uint8Array; ts: bigint; span: number }[] = [];
  private verdictBytes = 0;
  /** Whether this flow is in `holders` now. */
  private inHolders = false;
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
    this.awaitingVerdict = o.embedKeys !== undefined && o.variant !== Variant.Cleartext;
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
    this.dataIn(dir, bytes, ts, spanNs);
    this.settle();
  }

  /**
   * The record time of the oldest chunk copy held until the flow is classified (cleartext variants) or its
   * keys' verdict is in (TLS 1.3 with key embedding), or undefined: both holds are short (the first 64 KiB,
   * or from the ServerHello to the first encrypted record) and go out with these times.
   */
  get oldestHeldNs(): bigint | undefined {
    let oldest: bigint | undefined;
    for (const h of this.undecided ?? []) if (oldest === undefined || h.ts < oldest) oldest = h.ts;
    for (const h of this.deferred) if (oldest === undefined || h.ts < oldest) oldest = h.ts;
    return oldest;
  }

  /** Keeps this flow's membership of `holders` true to what it holds (the set is touched on a change only). */
  private settle(): void {
    const holders = this.o.holders;
    if (!holders) return;
    const holding = (this.undecided?.length ?? 0) > 0 || this.deferred.length > 0;
    if (holding === this.inHolders) return;
    this.inHolders = holding;
    if (holding) holders.add(this);
    else holders.delete(this);
  }

  private dataIn(dir: 0 | 1, bytes: Uint8Array, ts: bigint, spanNs: number): void {
    const session = this.session;
    if (this.awaitingVerdict && this.original && session)
      this.dataBeforeVerdict(session, dir, bytes, ts, spanNs);
    else {
      this.original?.data(dir, bytes, ts, spanNs);
      if (!session) return;
      if (this.undecided) {
        this.undecided.push({ dir, bytes: bytes.slice(), ts, span: spanNs });
        this.undecidedBytes += bytes.length;
      }
      session.push(dir, bytes);
      if (this.undecided) this.decide(session);
      else if (!this.keysEmbedded) this.embedKeys(session);
    }
    if (!session) return;
    if (this.o.variant === Variant.Original) {
      // Parsing (and decrypting) was only to embed authenticated keys: once they are, or cannot be, the
      // session has nothing left to do.
      if (this.keysEmbedded || FINAL_OUTCOMES.has(session.outcome.kind)) this.stop(session);
      return;
    }
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
    this.awaitingVerdict = false;
    this.releaseDeferred();
    this.original?.gap(dir, length);
    this.session?.gap(dir, length);
    this.settle();
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
    if (this.undecided) this.decide(session);
    else if (!this.keysEmbedded) this.embedKeys(session);
    this.flushCleartext(0, ts);
    this.flushCleartext(1, ts);
    this.settle();
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
    this.releaseDeferred();
    this.settle();
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
    const rejected = session.stats.candidatesRejected;
    if (rejected > 0) this.stats.candidateRejections++;
    if (this.o.variant !== Variant.Original) {
      this.stats.outcomes[outcome.kind] = (this.stats.outcomes[outcome.kind] ?? 0) + 1;
      if (outcome.kind === TlsOutcomeKind.UnsupportedSuite && info.cipherSuiteName) {
        this.stats.unsupportedSuites[info.cipherSuiteName] =
          (this.stats.unsupportedSuites[info.cipherSuiteName] ?? 0) + 1;
      }
      if (LOSSY_OUTCOMES.has(outcome.kind)) this.listConnection(outcome.kind, outcome.detail, rejected);
      else if (rejected > 0) this.listConnection("candidate-rejected", undefined, rejected);
    } else if (this.o.embedKeys && !this.keysEmbedded && outcome.kind === TlsOutcomeKind.IntegrityFailure) {
      this.listConnection("keys-not-embedded", outcome.detail, rejected);
    } else if (rejected > 0) {
      this.listConnection("candidate-rejected", undefined, rejected);
    }
    if (this.o.embedKeys && !this.keysEmbedded && outcome.kind === TlsOutcomeKind.IntegrityFailure)
      this.stats.keysNotEmbedded++;
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

  private listConnection(outcome: string, detail: string | undefined, candidatesRejected: number): void {
    const c = this.o.connection;
    if (!c) return;
    this.stats.list({
      connId: c.connId,
      flow: `${endpoint(c.client)} -> ${endpoint(c.server)}`,
      outcome,
      ...(detail === undefined ? {} : { detail }),
      candidatesRejected,
    });
  }

  /**
   * A chunk of an original flow whose keys are not yet authenticated: the session sees it first, so that keys
   * it authenticates are embedded before the chunk's packets; in TLS 1.3 the packets wait from the ServerHello
   * to the first encrypted record (the keys are needed from the ServerHello on).
   */
  private dataBeforeVerdict(
    session: TlsSession,
    dir: 0 | 1,
    bytes: Uint8Array,
    ts: bigint,
    span: number,
  ): void {
    const copy = bytes.slice(); // the session may keep or reuse what it is given
    session.push(dir, bytes);
    this.verdictBytes += bytes.length;
    const kind = session.outcome.kind;
    const cr = session.info.clientRandom;
    if (session.verifiedSecrets) this.embedKeys(session);
    if (
      this.keysEmbedded ||
      FINAL_OUTCOMES.has(kind) ||
      (cr !== undefined && this.o.keys.lookup(cr) === undefined) ||
      this.verdictBytes > (this.o.maxUndecidedBytes ?? 64 * 1024)
    ) {
      this.awaitingVerdict = false;
    }
    if (this.awaitingVerdict && session.info.version === TlsVersion.Tls13) {
      this.deferred.push({ dir, bytes: copy, ts, span });
      return;
    }
    this.releaseDeferred();
    this.original?.data(dir, copy, ts, span);
  }

  private releaseDeferred(): void {
    if (this.deferred.length === 0) return;
    const held = this.deferred;
    this.deferred = [];
    for (const h of held) this.original?.data(h.dir, h.bytes, h.ts, h.span);
  }

  /** Embeds the keys a record of this connection authenticated with (never keys that did not). */
  private embedKeys(session: TlsSession): void {
    if (!this.o.embedKeys || !this.original) return;
    const secrets = session.verifiedSecrets;
    if (!secrets) return;
    const cr = session.info.clientRandom;
    if (!cr) return;
    const text = keyLogLines(cr, secrets);
    if (!text) return;
    this.o.embedKeys(text);
    this.keysEmbedded = true;
    this.stats.keysEmbedded++;
  }

  /**
   * While the first bytes are held: is this TLS (cleartext and both), and (original flows with `embedKeys`)
   * did its keys authenticate? Not TLS: the flow passes through as it is. TLS: the original flow starts
   * once the verdict on its keys is in (a record authenticated, or failed, or no keys are known yet, or the
   * hold reached its cap), its authenticated keys embedded before its first packet.
   */
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
        // TLS: the original flow starts now (its keys are embedded once a record authenticates them).
        const held = this.undecided!;
        this.undecided = undefined;
        this.undecidedBytes = 0;
        this.original = this.makeOriginal(false);
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
