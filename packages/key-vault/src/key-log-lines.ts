/**
 * The NSS key-log lines of one client random, as the vault keeps them and KeyService sends them: one
 * `<label> <client random hex> <secret hex>\n` line per label of the first secret set, in label order, then
 * for each further candidate set (the client random was logged again with other secrets) the lines of the
 * labels where it differs, in label order. The stitcher's key store parses them with the same parser as a
 * key-log file and, like a key-log file, a later line that conflicts with a kept one is a candidate there
 * too: the lines give back the same sets in the same order.
 *
 * Merging is the one-process key store's own rule and bound (@cloudtap/tls `createKeyStore`, up to
 * `maxCandidates` sets, 4 by default): the stored lines go into a store of that client random first, then
 * the incoming entries, and what the store counts (added, duplicates, conflicts, candidates dropped) is the
 * merge's result. A client random's sets are few and small, so a store per merge costs little.
 */
import {
  createKeyStore,
  DEFAULT_KEY_STORE_OPTIONS,
  type KeyLogEntry,
  type KeyLogLabel,
  type KeyStoreAddResult,
  parseKeyLog,
  type TlsSecrets,
} from "@cloudtap/tls";

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The candidate secret sets of one client random, the first set first (the key store's `candidates`). */
export type SecretCandidates = readonly TlsSecrets[];

/** Entries grouped by client random hex (lowercase), every entry kept, in the order of the log. */
export function groupByClientRandom(entries: Iterable<KeyLogEntry>): Map<string, KeyLogEntry[]> {
  const out = new Map<string, KeyLogEntry[]>();
  for (const e of entries) {
    if (e.clientRandom.length !== 32) continue;
    const hex = toHex(e.clientRandom);
    let list = out.get(hex);
    if (!list) {
      list = [];
      out.set(hex, list);
    }
    list.push(e);
  }
  return out;
}

const byLabel = <T>([a]: [string, T], [b]: [string, T]) => (a < b ? -1 : a > b ? 1 : 0);

function setLines(clientRandomHex: string, set: TlsSecrets, except?: TlsSecrets): string {
  return (Object.entries(set) as [KeyLogLabel, Uint8Array | undefined][])
    .filter((kv): kv is [KeyLogLabel, Uint8Array] => kv[1] !== undefined)
    .filter(([label, secret]) => {
      const first = except?.[label];
      return first === undefined || !Buffer.from(first).equals(Buffer.from(secret));
    })
    .sort(byLabel)
    .map(([label, secret]) => `${label} ${clientRandomHex} ${toHex(secret)}\n`)
    .join("");
}

/** The lines of a client random's candidate sets (see the module comment for the order). */
export function formatKeyLogLines(clientRandomHex: string, candidates: SecretCandidates): string {
  const [first, ...later] = candidates;
  if (!first) return "";
  return (
    setLines(clientRandomHex, first) + later.map((set) => setLines(clientRandomHex, set, first)).join("")
  );
}

/** A key store for one merge: the one-process rule and bound, no eviction, no expiry within the merge. */
function mergeStore(maxCandidates: number) {
  return createKeyStore({ maxCandidates, maxBytes: Number.MAX_SAFE_INTEGER });
}

/** Parses stored lines back into candidate sets (they were written by `formatKeyLogLines`). */
export function parseKeyLogLines(
  lines: string,
  maxCandidates: number = DEFAULT_KEY_STORE_OPTIONS.maxCandidates,
): SecretCandidates {
  const parsed = parseKeyLog(lines);
  const first = parsed.entries[0];
  if (!first) return [];
  const store = mergeStore(maxCandidates);
  store.add(parsed.entries, 0);
  return store.candidates(first.clientRandom);
}

export interface MergeResult extends KeyStoreAddResult {
  /** The merged lines of the client random (stored sets first, then what the incoming entries added). */
  readonly lines: string;
}

/**
 * Merges a client random's incoming entries into its stored lines with the key store's candidate rule:
 * `added` new labels, `duplicates` (a value some kept set already has), `conflicts` (another value: kept as
 * a further candidate set), `candidatesDropped` (another value beyond `maxCandidates` sets: not kept).
 */
export function mergeKeyLogLines(
  clientRandomHex: string,
  stored: string | undefined,
  incoming: readonly KeyLogEntry[],
  maxCandidates: number = DEFAULT_KEY_STORE_OPTIONS.maxCandidates,
): MergeResult {
  const store = mergeStore(maxCandidates);
  const clientRandom = Buffer.from(clientRandomHex, "hex");
  if (stored !== undefined) store.add(parseKeyLog(stored).entries, 0);
  const result = store.add(incoming, 0);
  return { ...result, lines: formatKeyLogLines(clientRandomHex, store.candidates(clientRandom)) };
}
