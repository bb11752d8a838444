/**
 * One TLS connection, both directions, fed incrementally: `push(direction, bytes)` with each direction's
 * in-order stream bytes in any chunking. The session frames records, parses the handshake, looks up
 * secrets by client random, decrypts, and hands out application data (content type 23 only) in order per
 * direction. Nothing thrown by bad input leaves the session: problems are counted and end the affected
 * direction with a named reason.
 *
 * Lifecycle:
 * - Records that need something not known yet (the other direction's hello, or secrets) are queued, copied,
 *   up to `maxBufferedBytes` for the session; later records of that direction queue behind them so that
 *   order is kept. Every `push`, `keysAvailable()` and `giveUpKeys()` retries the queues.
 * - `output.needKeys` tells the caller which secrets it waits for (`pendingKeys` too). When the caller gives
 *   up (`giveUpKeys()` or `finish()`), records are decrypted with what is known and the rest is reported as
 *   `no-keys`.
 * - `gap(direction, length)`: a hole in the stream. Records before it are still processed; the direction then
 *   stops with reason `gap` (record framing cannot be recovered after a hole).
 * - `finish()`: the connection ended; gives up waiting, drops incomplete records (counted as truncated).
 *
 * TLS 1.3 key phases are found by the handshake (Finished, EndOfEarlyData, KeyUpdate) and, where secrets are
 * missing, by trial: a record that does not open under the current phase's keys is tried with the later
 * phases' keys (early -> handshake -> application). A secret that is missing while a later one is present is
 * taken to be absent for good (key logs are written in that order), and the records it would open are
 * skipped (counted, at most `maxSkippedRecords` per direction) instead of waited for.
 *
 * TLS 1.0-1.2: each direction switches keys at its ChangeCipherSpec, to those of its latest hello (so a
 * renegotiation, whose ChangeCipherSpec travels encrypted, is followed too); secrets come from the
 * CLIENT_RANDOM line of that hello's client random, which also covers resumed sessions.
 *
 * Candidates: a key source with `candidates` may hold several secret sets for one client random (logged twice
 * with different secrets). Until a record authenticates, a record that fails with the set in use is tried
 * with the next set (every key derived so far is dropped); the first set a record authenticates with is
 * chosen for the session (`verifiedSecrets`), and the sets that failed are counted (`candidatesRejected`).
 *
 * The session is not re-entrant: calling it from its own output callbacks throws a TlsArgumentError.
 * An exception thrown by an output callback propagates unchanged to the caller; the session then ignores
 * (and counts) everything it is given afterwards, since the record being processed was lost.
 */
import {
  CipherKind,
  type CipherSuite,
  cipherSuiteName,
  getCipherSuite,
  TlsVersion,
  tlsVersionName,
} from "./cipher-suites.js";
import { TlsArgumentError, TlsOptionError } from "./errors.js";
import {
  type ClientHello,
  HandshakeReassembler,
  HandshakeType,
  parseClientHello,
  parseEncryptedExtensions,
  parseServerHello,
  type ServerHello,
  type TlsAlert,
} from "./handshake.js";
import { KeyLogLabel } from "./key-log.js";
import { deriveTls12KeyBlock, type Tls12KeyBlock } from "./key-schedule.js";
import type { TlsKeySource, TlsSecrets } from "./key-store.js";
import { ContentType, type FramingProblem, RecordFramer } from "./record-framer.js";
import {
  createTls12Opener,
  IntegrityFailure,
  type RecordOpener,
  Tls13RecordOpener,
} from "./record-protection.js";
import {
  StopReason,
  type TlsDirection,
  type TlsDirectionStats,
  type TlsDirectionStatus,
  type TlsHandshakeInfo,
  type TlsKeyRequest,
  type TlsOutcome,
  TlsOutcomeKind,
  type TlsSessionStats,
  WaitReason,
} from "./session-report.js";

export interface TlsSessionOutput {
  /** Application data, in order per direction. The buffer belongs to the receiver (never reused). */
  applicationData?(direction: TlsDirection, plaintext: Uint8Array): void;
  /** Once, when the ServerHello (not a HelloRetryRequest) was parsed. `info` stays live afterwards. */
  handshake?(info: TlsHandshakeInfo): void;
  alert?(direction: TlsDirection, alert: TlsAlert): void;
  /** The session started waiting for secrets it does not have. */
  needKeys?(request: TlsKeyRequest): void;
  /** A direction stopped decrypting. */
  stopped?(direction: TlsDirection, reason: StopReason, detail: string | undefined): void;
}

export interface TlsSessionOptions {
  /**
   * Where secrets come from: a KeyStore, any TlsKeySource, or a lookup function. A source with `candidates`
   * gives further secret sets to try when a record does not authenticate (see the header).
   */
  readonly keys: TlsKeySource | ((clientRandom: Uint8Array) => TlsSecrets | undefined);
  readonly output?: TlsSessionOutput;
  /** Cap on queued record bytes (both directions) while waiting. Default 1 MiB. Overflow stops the direction. */
  readonly maxBufferedBytes?: number;
  /** Per direction: records that may be skipped for an absent secret. Default 64. */
  readonly maxSkippedRecords?: number;
  /** Largest hello or EncryptedExtensions message parsed. Default 128 KiB. */
  readonly maxHandshakeMessageBytes?: number;
}

export const DEFAULT_TLS_SESSION_OPTIONS = {
  maxBufferedBytes: 1024 * 1024,
  maxSkippedRecords: 64,
  maxHandshakeMessageBytes: 128 * 1024,
} as const;

export interface TlsSession {
  push(direction: TlsDirection, bytes: Uint8Array): void;
  /** A hole of `length` bytes in a direction's stream. */
  gap(direction: TlsDirection, length: number): void;
  /** Secrets may have arrived: look them up again and process what was waiting. */
  keysAvailable(): void;
  /** Stop waiting for secrets: decrypt with what is known and report the rest as `no-keys`. */
  giveUpKeys(): void;
  /** The connection ended: gives up waiting and drops incomplete records. Later pushes are ignored. */
  finish(): void;
  readonly info: TlsHandshakeInfo;
  readonly outcome: TlsOutcome;
  readonly stats: Readonly<TlsSessionStats>;
  /** What the session waits for, if it waits for secrets. */
  readonly pendingKeys: TlsKeyRequest | undefined;
  /** The secret set a record authenticated with (the chosen candidate); undefined until one did. */
  readonly verifiedSecrets: TlsSecrets | undefined;
}

export function createTlsSession(options: TlsSessionOptions): TlsSession {
  return new Session(options);
}

/** TLS 1.3 key phases of one direction, in the order they are used. */
const Phase = { Early: 0, Handshake: 1, Application: 2 } as const;
type Phase = (typeof Phase)[keyof typeof Phase];

const PHASE_LABELS: readonly (readonly [KeyLogLabel | undefined, KeyLogLabel])[] = [
  [KeyLogLabel.ClientEarlyTrafficSecret, KeyLogLabel.ClientEarlyTrafficSecret],
  [KeyLogLabel.ClientHandshakeTrafficSecret, KeyLogLabel.ServerHandshakeTrafficSecret],
  [KeyLogLabel.ClientTrafficSecret0, KeyLogLabel.ServerTrafficSecret0],
];

function phaseLabel(phase: Phase, direction: TlsDirection): KeyLogLabel {
  const pair = PHASE_LABELS[phase]!;
  return direction === 0 ? pair[0]! : pair[1];
}

/** Result of processing one record. */
const Step = { Done: 0, Wait: 1, Stop: 2 } as const;
type Step = (typeof Step)[keyof typeof Step];

interface QueuedRecord {
  readonly type: number;
  readonly version: number;
  readonly fragment: Uint8Array;
}

/** Hello and EncryptedExtensions bodies are kept; everything else is counted and skipped. */
const KEPT_MESSAGES: ReadonlySet<number> = new Set([
  HandshakeType.ClientHello,
  HandshakeType.ServerHello,
  HandshakeType.EncryptedExtensions,
  HandshakeType.KeyUpdate,
]);

function newDirectionStats(): TlsDirectionStats {
  return {
    bytes: 0,
    records: 0,
    recordsDecrypted: 0,
    applicationRecords: 0,
    applicationBytes: 0,
    handshakeMessages: 0,
    changeCipherSpecs: 0,
    alerts: 0,
    keyUpdates: 0,
    newSessionTickets: 0,
    skippedRecords: 0,
    unexpectedRecords: 0,
    ignoredBytes: 0,
    truncatedBytes: 0,
    queuedBytes: 0,
    maxQueuedBytes: 0,
    integrityFailures: {
      "aead-tag": 0,
      mac: 0,
      padding: 0,
      "record-length": 0,
      "no-inner-content-type": 0,
    },
  };
}

class Side {
  readonly framer = new RecordFramer();
  readonly handshake: HandshakeReassembler;
  readonly stats = newDirectionStats();
  readonly queue: QueuedRecord[] = [];
  queueHead = 0;
  waiting: WaitReason | undefined;
  waitingLabels: readonly KeyLogLabel[] = [];
  /** A needKeys notification was sent for the current wait. */
  notified = false;
  /** This direction waited for secrets at some point. */
  waitedForKeys = false;
  stopReason: StopReason | undefined;
  stopDetail: string | undefined;
  /** Stop with this reason once the queue is drained (a gap: what came before it is still good). */
  stopAfterQueue: StopReason | undefined;
  /** Messages seen in plaintext, to check that the stream starts with the right hello. */
  firstMessage = true;
  // TLS 1.0-1.2
  encrypted = false;
  /** Index of the handshake whose keys this direction uses after its ChangeCipherSpec. */
  handshakeIndex = -1;
  opener: RecordOpener | undefined;
  sawServerHelloDone = false;
  // TLS 1.3
  phase: Phase | undefined;
  readonly openers13: (Tls13RecordOpener | undefined)[] = [undefined, undefined, undefined];
  skipped = 0;

  constructor(
    readonly index: TlsDirection,
    maxMessageBytes: number,
  ) {
    this.handshake = new HandshakeReassembler(KEPT_MESSAGES, maxMessageBytes);
  }

  get queueLength(): number {
    return this.queue.length - this.queueHead;
  }

  get dead(): boolean {
    return this.stopReason !== undefined;
  }
}

class Session implements TlsSession {
  private readonly lookupFn: (clientRandom: Uint8Array) => TlsSecrets | undefined;
  private readonly candidatesFn: ((clientRandom: Uint8Array) => readonly TlsSecrets[]) | undefined;
  /** Index of the key source's candidate set in use (0: what `lookup` gives). */
  private candidate = 0;
  /** A record authenticated: the candidate in use is the session's for good. */
  private verified = false;
  private chosen: TlsSecrets | undefined;
  private readonly output: TlsSessionOutput;
  private readonly maxBufferedBytes: number;
  private readonly maxSkippedRecords: number;
  private readonly sides: readonly [Side, Side];
  readonly stats: TlsSessionStats;
  private readonly clientHellos: ClientHello[] = [];
  /** Final ServerHellos (HelloRetryRequests are not in this list). */
  private readonly serverHellos: ServerHello[] = [];
  private readonly keyBlocks: (Tls12KeyBlock | undefined)[] = [];
  private version: number | undefined;
  private suite13: CipherSuite | undefined;
  private helloRetryRequest = false;
  private resumed = false;
  private alpn: string | undefined;
  private earlyDataAccepted = false;
  private notTls = false;
  private gaveUp = false;
  private finished = false;
  private busy = false;
  private callbackFailed = false;
  /** An output callback threw: the record being processed is lost, so the session accepts nothing more. */
  private broken = false;
  private queuedBytes = 0;
  private handshakeAnnounced = false;

  constructor(options: TlsSessionOptions) {
    const keys = options.keys;
    if (typeof keys === "function") this.lookupFn = keys;
    else if (keys && typeof keys.lookup === "function") this.lookupFn = (cr) => keys.lookup(cr);
    else throw new TlsOptionError("keys", "must be a TlsKeySource or a lookup function");
    const candidates = typeof keys === "function" ? undefined : keys.candidates;
    this.candidatesFn = candidates ? (cr) => candidates.call(keys, cr) : undefined;
    this.output = options.output ?? {};
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_TLS_SESSION_OPTIONS.maxBufferedBytes;
    this.maxSkippedRecords = options.maxSkippedRecords ?? DEFAULT_TLS_SESSION_OPTIONS.maxSkippedRecords;
    const maxMessage =
      options.maxHandshakeMessageBytes ?? DEFAULT_TLS_SESSION_OPTIONS.maxHandshakeMessageBytes;
    if (!(this.maxBufferedBytes >= 0)) throw new TlsOptionError("maxBufferedBytes", "must be >= 0");
    if (!(Number.isInteger(this.maxSkippedRecords) && this.maxSkippedRecords >= 0)) {
      throw new TlsOptionError("maxSkippedRecords", "must be an integer >= 0");
    }
    if (!(maxMessage >= 4)) throw new TlsOptionError("maxHandshakeMessageBytes", "must be >= 4");
    this.sides = [new Side(0, maxMessage), new Side(1, maxMessage)];
    this.stats = {
      directions: [this.sides[0].stats, this.sides[1].stats],
      keyLookups: 0,
      bufferOverflows: 0,
      candidatesRejected: 0,
    };
  }

  // ---- public API ----

  push(direction: TlsDirection, bytes: Uint8Array): void {
    const d = this.side(direction);
    this.guarded(() => {
      d.stats.bytes += bytes.length;
      if (this.finished || this.broken || d.dead || d.stopAfterQueue !== undefined || d.framer.stopped) {
        d.stats.ignoredBytes += bytes.length;
        return;
      }
      d.framer.push(bytes, (type, version, fragment, owned) =>
        this.onRecord(d, type, version, fragment, owned),
      );
      if (d.framer.problem !== undefined && !d.dead) this.framingFailed(d, d.framer.problem);
      this.pump();
    });
  }

  gap(direction: TlsDirection, length: number): void {
    const d = this.side(direction);
    this.guarded(() => {
      if (this.broken || d.dead || d.stopAfterQueue !== undefined) return;
      d.stats.truncatedBytes += d.framer.discardPartial();
      d.stopAfterQueue = StopReason.Gap;
      d.stopDetail = `hole of ${length} bytes`;
      this.pump();
    });
  }

  keysAvailable(): void {
    this.guarded(() => {
      if (!this.broken) this.pump();
    });
  }

  giveUpKeys(): void {
    this.guarded(() => {
      this.gaveUp = true;
      if (!this.broken) this.pump();
    });
  }

  finish(): void {
    this.guarded(() => {
      if (this.finished || this.broken) return;
      this.gaveUp = true;
      this.pump();
      for (const d of this.sides) {
        d.stats.truncatedBytes += d.framer.discardPartial();
        if (d.dead) continue;
        if (d.queueLength > 0 && d.waiting !== undefined)
          this.stop(d, StopReason.NoHandshake, `waiting for ${d.waiting}`);
        else if (d.stopAfterQueue !== undefined) this.stop(d, d.stopAfterQueue, d.stopDetail);
      }
      this.finished = true;
    });
  }

  get pendingKeys(): TlsKeyRequest | undefined {
    const clientRandom = this.clientHellos[0]?.random;
    if (!clientRandom) return undefined;
    const labels = new Set<KeyLogLabel>();
    for (const d of this.sides) {
      if (d.waiting === WaitReason.Keys && !d.dead) for (const l of d.waitingLabels) labels.add(l);
    }
    if (labels.size === 0) return undefined;
    const random = this.keyRandom() ?? clientRandom;
    return { clientRandom: random, labels: [...labels] };
  }

  get info(): TlsHandshakeInfo {
    const ch = this.clientHellos[0];
    const sh = this.serverHellos[this.serverHellos.length - 1];
    const version = this.version;
    const suiteCode = sh?.cipherSuite ?? this.suite13?.code;
    return {
      version,
      versionName: version === undefined ? undefined : tlsVersionName(version),
      cipherSuite: suiteCode,
      cipherSuiteName: suiteCode === undefined ? undefined : cipherSuiteName(suiteCode),
      clientRandom: ch?.random,
      serverRandom: sh?.random,
      serverName: ch?.serverName,
      alpnOffered: ch?.alpn ?? [],
      alpn: this.alpn,
      supportedVersions: ch?.supportedVersions ?? [],
      keyShareGroups: ch?.keyShareGroups ?? [],
      helloRetryRequest: this.helloRetryRequest,
      resumed: this.resumed,
      extendedMasterSecret: (sh?.extendedMasterSecret ?? false) && version !== TlsVersion.Tls13,
      encryptThenMac: this.encryptThenMacIn(sh),
      earlyDataOffered: ch?.earlyData ?? false,
      earlyDataAccepted: this.earlyDataAccepted,
    };
  }

  get verifiedSecrets(): TlsSecrets | undefined {
    return this.chosen;
  }

  get outcome(): TlsOutcome {
    const directions = [this.status(this.sides[0]), this.status(this.sides[1])] as const;
    const { kind, detail } = this.outcomeKind();
    return { kind, detail, directions };
  }

  // ---- record intake ----

  private side(direction: TlsDirection): Side {
    if (direction !== 0 && direction !== 1) throw new TlsArgumentError("direction", "must be 0 or 1");
    return this.sides[direction];
  }

  /**
   * Runs one public call: refuses re-entry from an output callback, and marks the session broken when the call
   * throws (the record being processed was lost, so later input is ignored).
   */
  private guarded(work: () => void): void {
    if (this.busy) throw new TlsArgumentError("session", "called re-entrantly from an output callback");
    this.busy = true;
    this.callbackFailed = false;
    try {
      work();
    } catch (err) {
      this.broken = true;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private onRecord(d: Side, type: number, version: number, fragment: Uint8Array, owned: boolean): boolean {
    if (d.dead) return false;
    d.stats.records++;
    if (d.stats.records === 1) {
      const ok =
        fragment.length > 0 &&
        (type === ContentType.Handshake || (d.index === 1 && type === ContentType.Alert));
      if (!ok) {
        this.notTlsOrMalformed(d, `first record has content type ${type}`);
        return false;
      }
    }
    if (d.queueLength > 0) return this.enqueue(d, type, version, fragment, owned);
    const step = this.processGuarded(d, type, version, fragment);
    if (step === Step.Wait) return this.enqueue(d, type, version, fragment, owned);
    return !d.dead;
  }

  private enqueue(d: Side, type: number, version: number, fragment: Uint8Array, owned: boolean): boolean {
    if (this.queuedBytes + fragment.length > this.maxBufferedBytes) {
      this.stats.bufferOverflows++;
      this.stop(d, StopReason.BufferOverflow, `queue cap of ${this.maxBufferedBytes} bytes`);
      return false;
    }
    d.queue.push({ type, version, fragment: owned ? fragment : fragment.slice() });
    d.stats.queuedBytes += fragment.length;
    if (d.stats.queuedBytes > d.stats.maxQueuedBytes) d.stats.maxQueuedBytes = d.stats.queuedBytes;
    this.queuedBytes += fragment.length;
    return true;
  }

  /** Processes queued records until nothing moves. */
  private pump(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const d of this.sides) {
        while (d.queueLength > 0 && !d.dead) {
          const r = d.queue[d.queueHead]!;
          const step = this.processGuarded(d, r.type, r.version, r.fragment);
          if (step === Step.Wait || d.dead) break; // a stop has already dropped the queue
          this.dequeue(d);
          progress = true;
        }
        if (d.queueLength === 0 && d.queue.length > 0) {
          d.queue.length = 0;
          d.queueHead = 0;
        }
        if (!d.dead && d.queueLength === 0 && d.stopAfterQueue !== undefined) {
          this.stop(d, d.stopAfterQueue, d.stopDetail);
        }
      }
    }
  }

  private dequeue(d: Side): void {
    const r = d.queue[d.queueHead]!;
    d.queueHead++;
    d.stats.queuedBytes -= r.fragment.length;
    this.queuedBytes -= r.fragment.length;
    if (d.queueHead > 64 && d.queueHead * 2 > d.queue.length) {
      d.queue.splice(0, d.queueHead);
      d.queueHead = 0;
    }
  }

  private processGuarded(d: Side, type: number, version: number, fragment: Uint8Array): Step {
    const wasWaiting = d.waiting;
    d.waiting = undefined;
    let step: Step;
    try {
      step = this.process(d, type, version, fragment);
    } catch (err) {
      if (this.callbackFailed) {
        this.callbackFailed = false;
        throw err;
      }
      this.stop(d, StopReason.InternalError, err instanceof Error ? err.name : "unknown");
      return Step.Stop;
    }
    if (step !== Step.Wait) {
      d.notified = false;
      d.waitingLabels = [];
    } else if (wasWaiting !== d.waiting) {
      d.notified = false;
    }
    if (step === Step.Wait && d.waiting === WaitReason.Keys && !d.notified) {
      d.notified = true;
      d.waitedForKeys = true;
      const request = this.pendingKeys;
      if (request) this.call(() => this.output.needKeys?.(request));
    }
    return d.dead ? Step.Stop : step;
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.callbackFailed = true;
      throw err;
    }
  }

  // ---- record processing ----

  private process(d: Side, type: number, version: number, fragment: Uint8Array): Step {
    if (this.version === TlsVersion.Tls13) {
      if (type === ContentType.ApplicationData) return this.open13(d, type, version, fragment);
      return this.plaintext(d, type, fragment);
    }
    if (d.encrypted) return this.open12(d, type, version, fragment);
    return this.plaintext(d, type, fragment);
  }

  private plaintext(d: Side, type: number, fragment: Uint8Array): Step {
    switch (type) {
      case ContentType.Handshake:
        return this.handshakeRecord(d, fragment, true);
      case ContentType.Alert:
        this.alerts(d, fragment);
        return Step.Done;
      case ContentType.ChangeCipherSpec:
        return this.changeCipherSpec(d);
      case ContentType.ApplicationData:
        // Before the ServerHello, the client's encrypted records (0-RTT) cannot be told apart yet.
        if (this.version === undefined) return this.wait(d, WaitReason.ServerHello);
        d.stats.unexpectedRecords++;
        return Step.Done;
      default:
        d.stats.unexpectedRecords++;
        return Step.Done;
    }
  }

  private changeCipherSpec(d: Side): Step {
    if (this.version === undefined) {
      if (d.index === 0) return this.wait(d, WaitReason.ServerHello);
      return this.stop(d, StopReason.Malformed, "ChangeCipherSpec before ServerHello");
    }
    if (this.version === TlsVersion.Tls13) {
      d.stats.changeCipherSpecs++;
      return Step.Done; // middlebox compatibility only
    }
    d.stats.changeCipherSpecs++;
    // The keys are those of this direction's latest hello; the other hello of the pair may still be on its
    // way (directions are processed independently), which the first encrypted record waits for.
    if (d.index === 0) {
      d.handshakeIndex = this.clientHellos.length - 1;
    } else {
      d.handshakeIndex = this.serverHellos.length - 1;
      if (!d.sawServerHelloDone) this.resumed = true;
      d.sawServerHelloDone = false;
    }
    d.encrypted = true;
    d.opener = undefined;
    d.handshake.reset();
    return Step.Done;
  }

  private handshakeRecord(d: Side, fragment: Uint8Array, plaintext: boolean): Step {
    d.handshake.push(fragment, (type, body, length) => this.message(d, type, body, length, plaintext));
    return d.dead ? Step.Stop : Step.Done;
  }

  private message(
    d: Side,
    type: number,
    body: Uint8Array | undefined,
    length: number,
    plaintext: boolean,
  ): void {
    if (d.dead) return;
    d.stats.handshakeMessages++;
    if (d.firstMessage && plaintext) {
      d.firstMessage = false;
      const want = d.index === 0 ? HandshakeType.ClientHello : HandshakeType.ServerHello;
      if (type !== want) {
        this.notTlsOrMalformed(d, `stream starts with handshake message type ${type}`);
        return;
      }
    }
    switch (type) {
      case HandshakeType.ClientHello:
        if (d.index === 0) this.clientHello(d, body, length);
        return;
      case HandshakeType.ServerHello:
        if (d.index === 1) this.serverHello(d, body, length);
        return;
      case HandshakeType.ServerHelloDone:
        d.sawServerHelloDone = true;
        return;
      case HandshakeType.NewSessionTicket:
        d.stats.newSessionTickets++;
        return;
      case HandshakeType.EncryptedExtensions:
        if (d.index === 1 && body) {
          const ee = parseEncryptedExtensions(body);
          if (ee) {
            if (ee.alpn !== undefined) this.alpn = ee.alpn;
            this.earlyDataAccepted = ee.earlyData;
          }
        }
        return;
      case HandshakeType.Finished:
        if (this.version === TlsVersion.Tls13 && d.phase === Phase.Handshake && !plaintext) {
          d.phase = Phase.Application;
          d.handshake.reset();
        }
        return;
      case HandshakeType.EndOfEarlyData:
        if (this.version === TlsVersion.Tls13 && d.phase === Phase.Early && !plaintext) {
          d.phase = Phase.Handshake;
          d.handshake.reset();
        }
        return;
      case HandshakeType.KeyUpdate: {
        const current = d.openers13[Phase.Application];
        if (this.version === TlsVersion.Tls13 && d.phase === Phase.Application && current && !plaintext) {
          d.openers13[Phase.Application] = current.next();
          d.stats.keyUpdates++;
          d.handshake.reset();
        }
        return;
      }
    }
  }

  private clientHello(d: Side, body: Uint8Array | undefined, length: number): void {
    const ch = body ? parseClientHello(body) : undefined;
    if (!ch) {
      this.notTlsOrMalformed(d, `unparsable ClientHello of ${length} bytes`);
      return;
    }
    if (this.version === TlsVersion.Tls13 && this.clientHellos.length > 0) return; // second ClientHello after an HRR
    this.clientHellos.push(ch);
  }

  private serverHello(d: Side, body: Uint8Array | undefined, length: number): void {
    const sh = body ? parseServerHello(body) : undefined;
    if (!sh) {
      this.notTlsOrMalformed(d, `unparsable ServerHello of ${length} bytes`);
      return;
    }
    const version = sh.version;
    if (version < TlsVersion.Tls10 || version > TlsVersion.Tls13) {
      this.version ??= version;
      this.stopBoth(StopReason.UnsupportedVersion, tlsVersionName(version));
      return;
    }
    if (this.version !== undefined && this.version !== version) {
      this.stopBoth(StopReason.Malformed, "ServerHello changes the version");
      return;
    }
    this.version = version;
    const suite = getCipherSuite(sh.cipherSuite);
    const problem = suiteProblem(suite, sh.cipherSuite, version);
    if (problem) {
      this.stopBoth(StopReason.UnsupportedSuite, problem);
      return;
    }
    if (version === TlsVersion.Tls13) {
      this.suite13 = suite;
      if (sh.helloRetryRequest) {
        this.helloRetryRequest = true;
        return;
      }
      if (this.serverHellos.length > 0) {
        this.stopBoth(StopReason.Malformed, "second ServerHello in TLS 1.3");
        return;
      }
      this.resumed = sh.preSharedKey;
    } else {
      if (sh.alpn !== undefined) this.alpn = sh.alpn;
      d.sawServerHelloDone = false;
    }
    this.serverHellos.push(sh);
    if (!this.handshakeAnnounced) {
      this.handshakeAnnounced = true;
      const info = this.info;
      this.call(() => this.output.handshake?.(info));
    }
  }

  private encryptThenMacIn(sh: ServerHello | undefined): boolean {
    if (!sh || sh.version === TlsVersion.Tls13 || !sh.encryptThenMac) return false;
    return getCipherSuite(sh.cipherSuite)?.cipher.kind === CipherKind.Block;
  }

  private alerts(d: Side, fragment: Uint8Array): void {
    for (let i = 0; i + 1 < fragment.length; i += 2) {
      d.stats.alerts++;
      const alert: TlsAlert = { level: fragment[i]!, description: fragment[i + 1]! };
      this.call(() => this.output.alert?.(d.index, alert));
    }
  }

  private applicationData(d: Side, plaintext: Uint8Array): void {
    d.stats.applicationRecords++;
    if (plaintext.length === 0) return;
    d.stats.applicationBytes += plaintext.length;
    const out = this.output.applicationData;
    if (out) this.call(() => out(d.index, plaintext));
  }

  private inner(d: Side, contentType: number, plaintext: Uint8Array): Step {
    d.stats.recordsDecrypted++;
    if (!this.verified) this.verify(d);
    switch (contentType) {
      case ContentType.ApplicationData:
        this.applicationData(d, plaintext);
        return Step.Done;
      case ContentType.Handshake:
        return this.handshakeRecord(d, plaintext, false);
      case ContentType.Alert:
        this.alerts(d, plaintext);
        return Step.Done;
      case ContentType.ChangeCipherSpec:
        // TLS 1.2 renegotiation: the ChangeCipherSpec travels under the current keys.
        if (this.version !== TlsVersion.Tls13) return this.changeCipherSpec(d);
        d.stats.unexpectedRecords++;
        return Step.Done;
      default:
        d.stats.unexpectedRecords++;
        return Step.Done;
    }
  }

  // ---- TLS 1.0-1.2 ----

  private open12(d: Side, type: number, version: number, fragment: Uint8Array): Step {
    if (!d.opener) {
      const step = this.buildOpener12(d);
      if (!d.opener) return step;
    }
    const opener = d.opener;
    const failure = opener.open(type, version, fragment);
    if (failure !== undefined) {
      const random = this.clientHellos[d.handshakeIndex]?.random;
      if (random && this.nextCandidate(random)) return this.open12(d, type, version, fragment);
      d.stats.integrityFailures[failure]++;
      return this.stop(d, StopReason.IntegrityFailure, failure);
    }
    return this.inner(d, opener.contentType, opener.plaintext);
  }

  private buildOpener12(d: Side): Step {
    const k = d.handshakeIndex;
    const ch = this.clientHellos[k];
    if (!ch) return this.wait(d, WaitReason.ClientHello);
    const sh = this.serverHellos[k];
    if (!sh) return this.wait(d, WaitReason.ServerHello);
    const suite = getCipherSuite(sh.cipherSuite);
    const problem = suiteProblem(suite, sh.cipherSuite, sh.version);
    if (problem || !suite) return this.stop(d, StopReason.UnsupportedSuite, problem);
    let block = this.keyBlocks[k];
    if (!block) {
      const master = this.secrets(ch.random)?.[KeyLogLabel.ClientRandom];
      if (!master) {
        if (this.gaveUp) return this.stop(d, StopReason.NoKeys, KeyLogLabel.ClientRandom);
        return this.wait(d, WaitReason.Keys, [KeyLogLabel.ClientRandom]);
      }
      block = deriveTls12KeyBlock(sh.version, suite, master, ch.random, sh.random);
      this.keyBlocks[k] = block;
    }
    const opener = createTls12Opener(
      suite,
      sh.version,
      d.index === 0 ? block.client : block.server,
      this.encryptThenMacIn(sh),
    );
    if (!opener) return this.stop(d, StopReason.UnsupportedSuite, suite.name);
    d.opener = opener;
    return Step.Done;
  }

  // ---- TLS 1.3 ----

  private open13(d: Side, type: number, version: number, fragment: Uint8Array): Step {
    const suite = this.suite13;
    if (!suite) return this.wait(d, WaitReason.ServerHello);
    if (d.index === 1 && this.serverHellos.length === 0)
      return this.stop(d, StopReason.Malformed, "encrypted record before ServerHello");
    const ch = this.clientHellos[0];
    if (!ch) return this.wait(d, WaitReason.ClientHello);
    if (d.phase === undefined) {
      d.phase = d.index === 0 && ch.earlyData ? Phase.Early : Phase.Handshake;
    }
    const start = d.phase;
    let firstFailure: IntegrityFailure | undefined;
    let lastPresent = -1;
    let secrets: TlsSecrets | undefined;
    let looked = false;
    const missing: Phase[] = [];
    for (let p = start; p <= Phase.Application; p++) {
      const phase = p as Phase;
      if (phase === Phase.Early && d.index === 1) continue;
      let opener = d.openers13[phase];
      if (!opener) {
        if (!looked) {
          secrets = this.secrets(ch.random);
          looked = true;
        }
        const secret = secrets?.[phaseLabel(phase, d.index)];
        if (!secret) {
          missing.push(phase);
          continue;
        }
        opener = new Tls13RecordOpener(suite, secret);
        d.openers13[phase] = opener;
      }
      lastPresent = phase;
      const failure = opener.open(type, version, fragment);
      if (failure === undefined) {
        if (phase !== d.phase) {
          d.phase = phase;
          d.handshake.reset();
        }
        return this.inner(d, opener.contentType, opener.plaintext);
      }
      firstFailure ??= failure;
    }
    const awaitable = missing.filter((p) => p > lastPresent);
    if (awaitable.length > 0 && !this.gaveUp) {
      return this.wait(
        d,
        WaitReason.Keys,
        awaitable.map((p) => phaseLabel(p, d.index)),
      );
    }
    if (lastPresent < 0) {
      return this.stop(d, StopReason.NoKeys, missing.map((p) => phaseLabel(p, d.index)).join(","));
    }
    const phaseSecretAbsent = missing.includes(start);
    if (phaseSecretAbsent && start !== Phase.Application) {
      if (d.skipped < this.maxSkippedRecords) {
        d.skipped++;
        d.stats.skippedRecords++;
        return Step.Done;
      }
    }
    if (this.nextCandidate(ch.random)) return this.open13(d, type, version, fragment);
    const reason = firstFailure ?? IntegrityFailure.AeadTag;
    d.stats.integrityFailures[reason]++;
    return this.stop(d, StopReason.IntegrityFailure, reason);
  }

  // ---- helpers ----

  private secrets(clientRandom: Uint8Array): TlsSecrets | undefined {
    this.stats.keyLookups++;
    if (this.candidate === 0) return this.lookupFn(clientRandom);
    return this.candidatesFn?.(clientRandom)[this.candidate];
  }

  /** The first record authenticated: the candidate in use is chosen. */
  private verify(d: Side): void {
    this.verified = true;
    const hello =
      this.version === TlsVersion.Tls13 ? this.clientHellos[0] : this.clientHellos[d.handshakeIndex];
    if (hello) this.chosen = this.secrets(hello.random);
  }

  /**
   * A record failed before any authenticated: moves to the next candidate secret set, if there is one, and
   * drops every key derived from the last (no record was opened with them). True when the record is to be
   * tried again.
   */
  private nextCandidate(clientRandom: Uint8Array): boolean {
    if (this.verified || !this.candidatesFn) return false;
    if (this.candidate + 1 >= this.candidatesFn(clientRandom).length) return false;
    this.candidate++;
    this.stats.candidatesRejected++;
    this.keyBlocks.length = 0;
    for (const side of this.sides) {
      side.opener = undefined;
      side.openers13.fill(undefined);
    }
    return true;
  }

  /** The client random whose secrets are waited for. */
  private keyRandom(): Uint8Array | undefined {
    for (const d of this.sides) {
      if (d.waiting === WaitReason.Keys && d.encrypted && this.version !== TlsVersion.Tls13) {
        return this.clientHellos[d.handshakeIndex]?.random;
      }
    }
    return this.clientHellos[0]?.random;
  }

  private wait(d: Side, reason: WaitReason, labels: readonly KeyLogLabel[] = []): Step {
    d.waiting = reason;
    d.waitingLabels = labels;
    return Step.Wait;
  }

  private stop(d: Side, reason: StopReason, detail: string | undefined): Step {
    if (d.dead) return Step.Stop;
    d.stopReason = reason;
    d.stopDetail = detail;
    d.waiting = undefined;
    d.framer.stopped = true;
    let dropped = 0;
    for (let i = d.queueHead; i < d.queue.length; i++) dropped += d.queue[i]!.fragment.length;
    d.stats.ignoredBytes += dropped;
    d.stats.queuedBytes -= dropped;
    this.queuedBytes -= dropped;
    d.queue.length = 0;
    d.queueHead = 0;
    this.call(() => this.output.stopped?.(d.index, reason, detail));
    return Step.Stop;
  }

  private stopBoth(reason: StopReason, detail: string): void {
    for (const d of this.sides) this.stop(d, reason, detail);
  }

  private notTlsOrMalformed(d: Side, detail: string): void {
    if (this.clientHellos.length === 0 && this.serverHellos.length === 0 && !this.helloRetryRequest) {
      this.notTls = true;
      this.stopBoth(StopReason.NotTls, detail);
    } else {
      this.stop(d, StopReason.Malformed, detail);
    }
  }

  private framingFailed(d: Side, problem: FramingProblem): void {
    if (d.stats.records === 0) this.notTlsOrMalformed(d, `first bytes are not a TLS record (${problem})`);
    else this.stop(d, StopReason.Malformed, `record framing: ${problem}`);
  }

  private status(d: Side): TlsDirectionStatus {
    return {
      state: d.dead ? "stopped" : d.waiting !== undefined ? "waiting" : "open",
      waitingFor: d.dead ? undefined : d.waiting,
      stopReason: d.stopReason,
      stopDetail: d.stopReason ? d.stopDetail : undefined,
    };
  }

  private outcomeKind(): { kind: TlsOutcomeKind; detail: string | undefined } {
    if (this.notTls) return { kind: TlsOutcomeKind.NotTls, detail: this.sides[0].stopDetail };
    for (const reason of OUTCOME_PRIORITY) {
      for (const d of this.sides) {
        if (d.stopReason === reason) {
          const other = this.sides[d.index === 0 ? 1 : 0];
          // A connection-wide stop (both directions, same cause) is not attributed to a side.
          if (other.stopReason === reason && other.stopDetail === d.stopDetail)
            return { kind: reason, detail: d.stopDetail };
          const who = d.index === 0 ? "client" : "server";
          return { kind: reason, detail: d.stopDetail === undefined ? who : `${who}: ${d.stopDetail}` };
        }
      }
    }
    if (this.sides.some((d) => d.waiting === WaitReason.Keys)) {
      return { kind: TlsOutcomeKind.WaitingForKeys, detail: undefined };
    }
    const decrypted = this.sides.some((d) => d.stats.recordsDecrypted > 0);
    if (!decrypted || this.sides.some((d) => d.waiting !== undefined)) {
      return { kind: TlsOutcomeKind.Pending, detail: undefined };
    }
    if (this.sides.some((d) => d.waitedForKeys)) return { kind: TlsOutcomeKind.KeysLate, detail: undefined };
    return { kind: TlsOutcomeKind.Decrypted, detail: undefined };
  }
}

const OUTCOME_PRIORITY: readonly StopReason[] = [
  StopReason.UnsupportedVersion,
  StopReason.UnsupportedSuite,
  StopReason.IntegrityFailure,
  StopReason.NoKeys,
  StopReason.BufferOverflow,
  StopReason.Malformed,
  StopReason.InternalError,
  StopReason.Gap,
  StopReason.NoHandshake,
];

/** Why a negotiated suite cannot be decrypted, or undefined if it can. */
function suiteProblem(suite: CipherSuite | undefined, code: number, version: number): string | undefined {
  if (!suite) return `${cipherSuiteName(code)} (not in the suite table)`;
  if (suite.tls13 !== (version === TlsVersion.Tls13))
    return `${suite.name} is not a ${tlsVersionName(version)} suite`;
  if (suite.cipher.kind === CipherKind.Aead && version < TlsVersion.Tls12) {
    return `${suite.name} is not a ${tlsVersionName(version)} suite`;
  }
  if (!suite.supported) {
    return suite.cipher.available
      ? `${suite.name} (${suite.cipher.name} not implemented)`
      : `${suite.name} (${suite.cipher.name} not available in node:crypto)`;
  }
  return undefined;
}
