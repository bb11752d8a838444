/**
 * The key-broker's domain: key logs in, secrets by client random out.
 *
 * `ingest(text)` parses a key log with the project's one parser (@cloudtap/tls `parseKeyLog`), merges each
 * client random's lines into the vault with the one-process key store's rule (a client random logged again
 * with another secret keeps it as a further candidate set, up to `maxCandidates` sets; conflicts and
 * candidates dropped counted; see key-log-lines.ts) and wakes the waiters of those client randoms. The
 * stitcher gets every candidate set in the lines and tries them in turn, as `cloudtap stitch` does. `lookup` answers from the vault; `waitForKeys` answers at once with what
 * is there, and otherwise waits until every asked client random has keys or the wait ends (timeout, signal),
 * then answers with what arrived and the rest as `missing`. A client random counts as present once it has
 * any key-log line: a key log carries all of a session's lines, and they are merged before anyone is woken.
 *
 * Caps: concurrent waits (`maxWaiters`; beyond, TooManyWaitersError, counted), client randoms per request
 * (`maxClientRandoms`), and the wait (`maxWaitMs`). Nothing here logs, and no error message carries key
 * material: skipped lines are reported by line number and problem only.
 */
import {
  createKeyStore,
  DEFAULT_KEY_STORE_OPTIONS,
  type KeyLogEntry,
  type KeyLogSkippedLine,
  parseKeyLog,
} from "@cloudtap/tls";
import { BadClientRandomError, KeyVaultError, KeyVaultErrorCode, TooManyWaitersError } from "./errors.js";
import { groupByClientRandom, mergeKeyLogLines } from "./key-log-lines.js";
import type { SecretVault } from "./secret-vault.js";

export interface KeyBrokerOptions {
  readonly vault: SecretVault;
  /** Concurrent `waitForKeys` calls. Default 10000. */
  readonly maxWaiters?: number;
  /** Client randoms in one request. Default 4096. */
  readonly maxClientRandoms?: number;
  /** Wait used when a request asks for 0 ms. Default 10 s. */
  readonly defaultWaitMs?: number;
  /** Longest wait granted. Default 5 min. */
  readonly maxWaitMs?: number;
  /** Secret sets kept per client random, as the one-process key store keeps them. Default 4. */
  readonly maxCandidates?: number;
}

export const DEFAULT_KEY_BROKER_OPTIONS = {
  maxWaiters: 10_000,
  maxClientRandoms: 4096,
  defaultWaitMs: 10_000,
  maxWaitMs: 300_000,
  maxCandidates: DEFAULT_KEY_STORE_OPTIONS.maxCandidates,
} as const satisfies Required<Omit<KeyBrokerOptions, "vault">>;

export interface KeyEntry {
  readonly clientRandom: Uint8Array;
  /** NSS key-log lines, newline-terminated. */
  readonly keyLogLines: string;
}

export interface WaitForKeysResult {
  readonly entries: readonly KeyEntry[];
  readonly missing: readonly Uint8Array[];
}

export interface IngestResult {
  readonly clientRandoms: number;
  readonly added: number;
  /** Secrets of a label that had another value: kept as a further candidate set. */
  readonly conflicts: number;
  /** Conflicting secrets beyond `maxCandidates` sets: not kept. */
  readonly candidatesDropped: number;
  readonly skippedLines: readonly KeyLogSkippedLine[];
  readonly skippedLineCount: number;
}

export interface KeyBrokerStats {
  keyLogsIngested: number;
  secretsAdded: number;
  /** Secrets of a label that had another value: kept as a further candidate set. */
  conflicts: number;
  /** Conflicting secrets beyond `maxCandidates` sets: not kept. */
  candidatesDropped: number;
  linesSkipped: number;
  lookups: number;
  lookupHits: number;
  lookupMisses: number;
  waits: number;
  waitsReady: number;
  waitsPartial: number;
  waitsOverflow: number;
  /** Waits in flight now (a gauge). */
  waiters: number;
}

export interface KeyBroker {
  ingest(text: string | Uint8Array): Promise<IngestResult>;
  lookup(clientRandoms: readonly Uint8Array[]): Promise<KeyEntry[]>;
  waitForKeys(
    clientRandoms: readonly Uint8Array[],
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WaitForKeysResult>;
  readonly stats: Readonly<KeyBrokerStats>;
}

/** Vault round trips in flight while one key log is merged. */
const INGEST_CONCURRENCY = 16;

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

interface Waiter {
  /** Client random hex -> lines, filled in as keys arrive. */
  readonly found: Map<string, string>;
  readonly wanted: ReadonlySet<string>;
  wake(): void;
}

export function createKeyBroker(options: KeyBrokerOptions): KeyBroker {
  const vault = options.vault;
  const maxWaiters = options.maxWaiters ?? DEFAULT_KEY_BROKER_OPTIONS.maxWaiters;
  const maxClientRandoms = options.maxClientRandoms ?? DEFAULT_KEY_BROKER_OPTIONS.maxClientRandoms;
  const defaultWaitMs = options.defaultWaitMs ?? DEFAULT_KEY_BROKER_OPTIONS.defaultWaitMs;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_KEY_BROKER_OPTIONS.maxWaitMs;
  const maxCandidates = options.maxCandidates ?? DEFAULT_KEY_BROKER_OPTIONS.maxCandidates;
  createKeyStore({ maxCandidates }); // a bad bound is the key store's TlsOptionError, now rather than at ingest
  const waitersByRandom = new Map<string, Set<Waiter>>();
  const stats: KeyBrokerStats = {
    keyLogsIngested: 0,
    secretsAdded: 0,
    conflicts: 0,
    candidatesDropped: 0,
    linesSkipped: 0,
    lookups: 0,
    lookupHits: 0,
    lookupMisses: 0,
    waits: 0,
    waitsReady: 0,
    waitsPartial: 0,
    waitsOverflow: 0,
    waiters: 0,
  };

  function checkRequest(clientRandoms: readonly Uint8Array[]): string[] {
    if (clientRandoms.length > maxClientRandoms) {
      throw new KeyVaultError(
        KeyVaultErrorCode.BadClientRandom,
        `${clientRandoms.length} client randoms in one request (cap ${maxClientRandoms})`,
      );
    }
    return clientRandoms.map((r) => {
      if (r.length !== 32) throw new BadClientRandomError(r.length);
      return toHex(r);
    });
  }

  /** Lines per hex, for those the vault has; one vault read per distinct client random. */
  async function read(hexes: readonly string[]): Promise<Map<string, string>> {
    const unique = [...new Set(hexes)];
    const values = await Promise.all(unique.map((h) => vault.get(h)));
    const out = new Map<string, string>();
    unique.forEach((h, i) => {
      const v = values[i];
      if (v !== undefined) out.set(h, v);
    });
    return out;
  }

  function answer(
    clientRandoms: readonly Uint8Array[],
    hexes: readonly string[],
    found: Map<string, string>,
  ) {
    const entries: KeyEntry[] = [];
    const missing: Uint8Array[] = [];
    hexes.forEach((h, i) => {
      const lines = found.get(h);
      if (lines === undefined) missing.push(clientRandoms[i]!);
      else entries.push({ clientRandom: clientRandoms[i]!, keyLogLines: lines });
    });
    return { entries, missing };
  }

  return {
    async ingest(text) {
      const parsed = parseKeyLog(text);
      const grouped = groupByClientRandom(parsed.entries);
      let added = 0;
      let conflicts = 0;
      let candidatesDropped = 0;
      const merge = async (hex: string, incoming: readonly KeyLogEntry[]) => {
        const stored = await vault.get(hex);
        const merged = mergeKeyLogLines(hex, stored, incoming, maxCandidates);
        added += merged.added;
        conflicts += merged.conflicts;
        candidatesDropped += merged.candidatesDropped;
        const lines = merged.lines;
        if (merged.added + merged.conflicts > 0 || stored === undefined) await vault.put(hex, lines);
        for (const w of waitersByRandom.get(hex) ?? []) {
          w.found.set(hex, lines);
          if (w.found.size === w.wanted.size) w.wake();
        }
      };
      // Client randoms are independent: a few vault round trips in flight at once (one log may hold thousands).
      const queue = grouped.entries();
      const worker = async () => {
        for (let next = queue.next(); !next.done; next = queue.next()) await merge(...next.value);
      };
      await Promise.all(Array.from({ length: Math.min(INGEST_CONCURRENCY, grouped.size) }, worker));
      stats.keyLogsIngested++;
      stats.secretsAdded += added;
      stats.conflicts += conflicts;
      stats.candidatesDropped += candidatesDropped;
      stats.linesSkipped += parsed.stats.skippedLines;
      return {
        clientRandoms: grouped.size,
        added,
        conflicts,
        candidatesDropped,
        skippedLines: parsed.skippedLines,
        skippedLineCount: parsed.stats.skippedLines,
      };
    },

    async lookup(clientRandoms) {
      const hexes = checkRequest(clientRandoms);
      const found = await read(hexes);
      const { entries, missing } = answer(clientRandoms, hexes, found);
      stats.lookups++;
      stats.lookupHits += entries.length;
      stats.lookupMisses += missing.length;
      return entries;
    },

    async waitForKeys(clientRandoms, timeoutMs, signal) {
      const hexes = checkRequest(clientRandoms);
      const wanted = new Set(hexes);
      stats.waits++;
      if (stats.waiters >= maxWaiters) {
        stats.waitsOverflow++;
        throw new TooManyWaitersError(maxWaiters);
      }
      const waitMs = Math.min(timeoutMs > 0 ? timeoutMs : defaultWaitMs, maxWaitMs);
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const waiter: Waiter = { found: new Map(), wanted, wake: () => wake() };
      // Registered before the vault is read, so a key log ingested meanwhile is never missed.
      for (const h of wanted) {
        let set = waitersByRandom.get(h);
        if (!set) {
          set = new Set();
          waitersByRandom.set(h, set);
        }
        set.add(waiter);
      }
      stats.waiters++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => wake();
      try {
        for (const [h, lines] of await read([...wanted]))
          if (!waiter.found.has(h)) waiter.found.set(h, lines);
        if (waiter.found.size < wanted.size && !signal?.aborted) {
          timer = setTimeout(() => wake(), waitMs);
          signal?.addEventListener("abort", onAbort, { once: true });
          await woken;
        }
      } finally {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        for (const h of wanted) {
          const set = waitersByRandom.get(h);
          set?.delete(waiter);
          if (set?.size === 0) waitersByRandom.delete(h);
        }
        stats.waiters--;
      }
      const result = answer(clientRandoms, hexes, waiter.found);
      if (result.missing.length === 0) stats.waitsReady++;
      else stats.waitsPartial++;
      return result;
    },

    get stats() {
      return stats;
    },
  };
}
