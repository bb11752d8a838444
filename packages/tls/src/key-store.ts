/**
 * Secrets indexed by client random, with a TTL (time is an input: the caller passes `nowMs`, the store never
 * reads a clock), a byte cap with oldest-first eviction, and `waitForKeys` for keys that land after the data.
 *
 * Expiry and deadlines are evaluated whenever the caller hands the store a time (`add`, `addKeyLog`,
 * `expire`); a waiter's deadline is in the same time base. An AbortSignal ends a wait at once.
 */
import { TlsArgumentError, TlsOptionError } from "./errors.js";
import { bytesToHex, equalBytes } from "./hex.js";
import {
  type KeyLogEntry,
  type KeyLogLabel,
  type KeyLogParserOptions,
  type KeyLogSkippedLine,
  type KeyLogStats,
  parseKeyLog,
} from "./key-log.js";

/** The secrets known for one client random, by key log label. */
export type TlsSecrets = Readonly<Partial<Record<KeyLogLabel, Uint8Array>>>;

/** Where a TLS session looks its secrets up. A `KeyStore` is one; any object with `lookup` will do. */
export interface TlsKeySource {
  lookup(clientRandom: Uint8Array): TlsSecrets | undefined;
  /**
   * Every secret set known for a client random, `lookup`'s first: when one was logged with different
   * secrets, the sets to try in turn until a record authenticates. Optional: one set is `lookup`'s.
   */
  candidates?(clientRandom: Uint8Array): readonly TlsSecrets[];
}

export interface KeyStoreOptions {
  /** How long an entry lives after its last secret was added, in ms of the caller's clock. Default 1 hour. */
  readonly ttlMs?: number;
  /** Cap on the stored bytes (secrets + client randoms + a per-entry overhead estimate). Default 64 MiB. */
  readonly maxBytes?: number;
  /** Cap on concurrent `waitForKeys` calls; a call beyond it resolves at once with `overflow`. Default 10000. */
  readonly maxWaiters?: number;
  /** Secret sets kept per client random (a value conflicting with every kept set starts a new one). Default 4. */
  readonly maxCandidates?: number;
}

export const DEFAULT_KEY_STORE_OPTIONS: Required<KeyStoreOptions> = {
  ttlMs: 60 * 60 * 1000,
  maxBytes: 64 * 1024 * 1024,
  maxWaiters: 10000,
  maxCandidates: 4,
};

/** Bytes counted per entry on top of its secrets and client random (map slot, object, strings). */
export const KEY_STORE_ENTRY_OVERHEAD_BYTES = 160;

export const KeyWaitStatus = {
  /** Every requested label is present; `secrets` holds them. */
  Ready: "ready",
  /** The deadline passed first; `secrets` holds what is known (maybe nothing). */
  Deadline: "deadline",
  /** The signal aborted the wait. */
  Aborted: "aborted",
  /** Too many concurrent waits (`maxWaiters`). */
  Overflow: "overflow",
} as const;
export type KeyWaitStatus = (typeof KeyWaitStatus)[keyof typeof KeyWaitStatus];

export interface KeyWaitResult {
  readonly status: KeyWaitStatus;
  readonly secrets: TlsSecrets | undefined;
}

export interface KeyWaitOptions {
  /** In the store's time base (the `nowMs` given to add/expire). Resolves with `deadline` once time reaches it. */
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
}

export interface KeyStoreAddResult {
  /** Secrets stored (new, or a new label for a known client random). */
  added: number;
  /** Same label and same value again. */
  duplicates: number;
  /**
   * Same label, different value: kept as another candidate set (the first set stays `lookup`'s; a session
   * tries the others when the first does not authenticate), up to `maxCandidates` sets.
   */
  conflicts: number;
  /** Conflicting values beyond `maxCandidates` sets: not kept. */
  candidatesDropped: number;
}

export interface KeyStoreStats {
  entries: number;
  bytes: number;
  secretsAdded: number;
  duplicates: number;
  conflicts: number;
  candidatesDropped: number;
  /** Entries removed because the byte cap was reached (oldest first). */
  evictedEntries: number;
  /** Entries removed because their TTL passed. */
  expiredEntries: number;
  waiters: number;
  waitsReady: number;
  waitsDeadline: number;
  waitsAborted: number;
  waitsOverflow: number;
  /** Key log lines skipped by `addKeyLog` (malformed or unknown label). */
  keyLogLinesSkipped: number;
}

export interface KeyStore extends TlsKeySource {
  add(entries: Iterable<KeyLogEntry>, nowMs: number): KeyStoreAddResult;
  /** Parses an RFC 9850 key log and adds its entries. */
  addKeyLog(
    text: string | Uint8Array,
    nowMs: number,
    options?: KeyLogParserOptions,
  ): KeyStoreAddResult & { readonly skippedLines: readonly KeyLogSkippedLine[]; readonly parse: KeyLogStats };
  lookup(clientRandom: Uint8Array): TlsSecrets | undefined;
  /** `lookup`'s set first, then each further candidate set (completed with the first set's other labels). */
  candidates(clientRandom: Uint8Array): readonly TlsSecrets[];
  /** True when every label is known for this client random. */
  has(clientRandom: Uint8Array, labels: readonly KeyLogLabel[]): boolean;
  /**
   * Resolves when every label is known, the deadline passes, or the signal aborts; never rejects. Throws a
   * TlsArgumentError at once if the client random is not 32 bytes.
   */
  waitForKeys(
    clientRandom: Uint8Array,
    labels: readonly KeyLogLabel[],
    options?: KeyWaitOptions,
  ): Promise<KeyWaitResult>;
  /** Removes expired entries and settles waiters whose deadline passed. Returns the number of entries removed. */
  expire(nowMs: number): number;
  delete(clientRandom: Uint8Array): boolean;
  readonly stats: Readonly<KeyStoreStats>;
}

interface Entry {
  secrets: Partial<Record<KeyLogLabel, Uint8Array>>;
  /** Further candidate sets (labels that conflict with `secrets`), in the order they were met. */
  alternatives?: Partial<Record<KeyLogLabel, Uint8Array>>[];
  bytes: number;
  expiresAtMs: number;
}

interface Waiter {
  readonly labels: readonly KeyLogLabel[];
  readonly deadlineMs: number;
  readonly key: string;
  settle(status: KeyWaitStatus): void;
}

export function createKeyStore(options: KeyStoreOptions = {}): KeyStore {
  const ttlMs = options.ttlMs ?? DEFAULT_KEY_STORE_OPTIONS.ttlMs;
  const maxBytes = options.maxBytes ?? DEFAULT_KEY_STORE_OPTIONS.maxBytes;
  const maxWaiters = options.maxWaiters ?? DEFAULT_KEY_STORE_OPTIONS.maxWaiters;
  const maxCandidates = options.maxCandidates ?? DEFAULT_KEY_STORE_OPTIONS.maxCandidates;
  if (!(Number.isInteger(maxCandidates) && maxCandidates >= 1)) {
    throw new TlsOptionError("maxCandidates", "must be an integer >= 1");
  }
  if (!(ttlMs > 0)) throw new TlsOptionError("ttlMs", "must be a positive number of milliseconds");
  if (!(maxBytes > 0)) throw new TlsOptionError("maxBytes", "must be positive");
  if (!(Number.isInteger(maxWaiters) && maxWaiters >= 0)) {
    throw new TlsOptionError("maxWaiters", "must be a non-negative integer");
  }

  /** Insertion order = order of last update, which (with a monotonic clock) is also expiry order. */
  const entries = new Map<string, Entry>();
  const waiters = new Map<string, Set<Waiter>>();
  /** The latest time seen: stamps never go backwards, so expiry order stays insertion order. */
  let now = Number.NEGATIVE_INFINITY;
  const stats: KeyStoreStats = {
    entries: 0,
    bytes: 0,
    secretsAdded: 0,
    duplicates: 0,
    conflicts: 0,
    candidatesDropped: 0,
    evictedEntries: 0,
    expiredEntries: 0,
    waiters: 0,
    waitsReady: 0,
    waitsDeadline: 0,
    waitsAborted: 0,
    waitsOverflow: 0,
    keyLogLinesSkipped: 0,
  };

  function advance(nowMs: number): void {
    if (nowMs > now) now = nowMs;
  }

  function removeEntry(key: string, entry: Entry): void {
    entries.delete(key);
    stats.bytes -= entry.bytes;
    stats.entries = entries.size;
  }

  function expireEntries(): number {
    let removed = 0;
    for (const [key, entry] of entries) {
      if (entry.expiresAtMs > now) break;
      removeEntry(key, entry);
      removed++;
    }
    stats.expiredEntries += removed;
    return removed;
  }

  function settleDeadlines(): void {
    if (stats.waiters === 0) return;
    for (const set of waiters.values()) {
      for (const w of set) if (w.deadlineMs <= now) w.settle(KeyWaitStatus.Deadline);
    }
  }

  function satisfied(entry: Entry | undefined, labels: readonly KeyLogLabel[]): boolean {
    if (!entry) return labels.length === 0;
    for (const l of labels) if (!entry.secrets[l]) return false;
    return true;
  }

  function add(list: Iterable<KeyLogEntry>, nowMs: number): KeyStoreAddResult {
    advance(nowMs);
    expireEntries();
    const result: KeyStoreAddResult = { added: 0, duplicates: 0, conflicts: 0, candidatesDropped: 0 };
    const touched = new Set<string>();
    for (const e of list) {
      if (e.clientRandom.length !== 32) continue;
      const key = bytesToHex(e.clientRandom);
      let entry = entries.get(key);
      if (entry) {
        const known = entry.secrets[e.label];
        if (known) {
          if (equalBytes(known, e.secret)) result.duplicates++;
          else addCandidate(entry, e, result);
          continue;
        }
        entries.delete(key); // re-inserted below: most recently updated goes last
      } else {
        entry = { secrets: {}, bytes: 32 + KEY_STORE_ENTRY_OVERHEAD_BYTES, expiresAtMs: 0 };
        stats.bytes += entry.bytes;
      }
      entry.secrets[e.label] = e.secret.slice();
      entry.bytes += e.secret.length;
      stats.bytes += e.secret.length;
      entry.expiresAtMs = now + ttlMs;
      entries.set(key, entry);
      result.added++;
      touched.add(key);
    }
    stats.entries = entries.size;
    stats.secretsAdded += result.added;
    stats.duplicates += result.duplicates;
    stats.conflicts += result.conflicts;
    stats.candidatesDropped += result.candidatesDropped;
    while (stats.bytes > maxBytes && entries.size > 0) {
      const first = entries.entries().next().value as [string, Entry];
      removeEntry(first[0], first[1]);
      touched.delete(first[0]);
      stats.evictedEntries++;
    }
    for (const key of touched) {
      const set = waiters.get(key);
      if (!set) continue;
      const entry = entries.get(key);
      for (const w of set) if (satisfied(entry, w.labels)) w.settle(KeyWaitStatus.Ready);
    }
    settleDeadlines();
    return result;
  }

  /** A value conflicting with the first set: into the first other set without this label, or a new set. */
  function addCandidate(entry: Entry, e: KeyLogEntry, result: KeyStoreAddResult): void {
    entry.alternatives ??= [];
    const sets = entry.alternatives;
    for (const set of sets) {
      const v = set[e.label];
      if (v && equalBytes(v, e.secret)) {
        result.duplicates++;
        return;
      }
    }
    let into = sets.find((set) => !set[e.label]);
    if (!into) {
      if (sets.length + 1 >= maxCandidates) {
        result.candidatesDropped++;
        return;
      }
      into = {};
      sets.push(into);
    }
    into[e.label] = e.secret.slice();
    entry.bytes += e.secret.length;
    stats.bytes += e.secret.length;
    result.conflicts++;
  }

  function lookupKey(key: string): TlsSecrets | undefined {
    return entries.get(key)?.secrets;
  }

  return {
    add,
    addKeyLog(text, nowMs, parserOptions) {
      const parsed = parseKeyLog(text, parserOptions);
      stats.keyLogLinesSkipped += parsed.stats.skippedLines;
      return { ...add(parsed.entries, nowMs), skippedLines: parsed.skippedLines, parse: parsed.stats };
    },
    lookup(clientRandom) {
      return clientRandom.length === 32 ? lookupKey(bytesToHex(clientRandom)) : undefined;
    },
    candidates(clientRandom) {
      const entry = clientRandom.length === 32 ? entries.get(bytesToHex(clientRandom)) : undefined;
      if (!entry) return [];
      if (!entry.alternatives) return [entry.secrets];
      // A later set names only the labels that conflicted: the others are the first set's.
      return [entry.secrets, ...entry.alternatives.map((alt) => ({ ...entry.secrets, ...alt }))];
    },
    has(clientRandom, labels) {
      return clientRandom.length === 32 && satisfied(entries.get(bytesToHex(clientRandom)), labels);
    },
    waitForKeys(clientRandom, labels, waitOptions = {}) {
      if (clientRandom.length !== 32) throw new TlsArgumentError("clientRandom", "must be 32 bytes");
      const key = bytesToHex(clientRandom);
      const known = () => lookupKey(key);
      if (satisfied(entries.get(key), labels)) {
        stats.waitsReady++;
        return Promise.resolve({ status: KeyWaitStatus.Ready, secrets: known() });
      }
      const deadlineMs = waitOptions.deadlineMs ?? Number.POSITIVE_INFINITY;
      const signal = waitOptions.signal;
      if (signal?.aborted) {
        stats.waitsAborted++;
        return Promise.resolve({ status: KeyWaitStatus.Aborted, secrets: known() });
      }
      if (deadlineMs <= now) {
        stats.waitsDeadline++;
        return Promise.resolve({ status: KeyWaitStatus.Deadline, secrets: known() });
      }
      if (stats.waiters >= maxWaiters) {
        stats.waitsOverflow++;
        return Promise.resolve({ status: KeyWaitStatus.Overflow, secrets: known() });
      }
      return new Promise<KeyWaitResult>((resolve) => {
        let done = false;
        const onAbort = () => waiter.settle(KeyWaitStatus.Aborted);
        const waiter: Waiter = {
          labels: [...labels],
          deadlineMs,
          key,
          settle(status) {
            if (done) return;
            done = true;
            const set = waiters.get(key);
            set?.delete(waiter);
            if (set && set.size === 0) waiters.delete(key);
            stats.waiters--;
            signal?.removeEventListener("abort", onAbort);
            if (status === KeyWaitStatus.Ready) stats.waitsReady++;
            else if (status === KeyWaitStatus.Deadline) stats.waitsDeadline++;
            else if (status === KeyWaitStatus.Aborted) stats.waitsAborted++;
            resolve({ status, secrets: known() });
          },
        };
        let set = waiters.get(key);
        if (!set) {
          set = new Set();
          waiters.set(key, set);
        }
        set.add(waiter);
        stats.waiters++;
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    expire(nowMs) {
      advance(nowMs);
      const removed = expireEntries();
      settleDeadlines();
      return removed;
    },
    delete(clientRandom) {
      if (clientRandom.length !== 32) return false;
      const key = bytesToHex(clientRandom);
      const entry = entries.get(key);
      if (!entry) return false;
      removeEntry(key, entry);
      return true;
    },
    get stats() {
      return stats;
    },
  };
}
