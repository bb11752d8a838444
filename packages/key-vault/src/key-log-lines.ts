/**
 * The NSS key-log lines of one client random, as the vault keeps them and KeyService sends them: one
 * `<label> <client random hex> <secret hex>\n` line per label, in label order, so the stitcher's key store
 * parses them with the same parser as a key-log file. Merging keeps the first value of a label (as the key
 * store does) and counts conflicts.
 */
import { type KeyLogEntry, type KeyLogLabel, parseKeyLog } from "@cloudtap/tls";

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** Label -> secret hex of one client random. */
export type SecretsByLabel = Map<KeyLogLabel, string>;

/** Entries grouped by client random hex (lowercase), each label once (the first value wins). */
export function groupByClientRandom(entries: Iterable<KeyLogEntry>): Map<string, SecretsByLabel> {
  const out = new Map<string, SecretsByLabel>();
  for (const e of entries) {
    const hex = toHex(e.clientRandom);
    let labels = out.get(hex);
    if (!labels) {
      labels = new Map();
      out.set(hex, labels);
    }
    if (!labels.has(e.label)) labels.set(e.label, toHex(e.secret));
  }
  return out;
}

export function formatKeyLogLines(clientRandomHex: string, secrets: SecretsByLabel): string {
  return [...secrets.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([label, secret]) => `${label} ${clientRandomHex} ${secret}\n`)
    .join("");
}

/** Parses stored lines back (they were written by `formatKeyLogLines`, so every line parses). */
export function parseKeyLogLines(lines: string): SecretsByLabel {
  const grouped = groupByClientRandom(parseKeyLog(lines).entries);
  return grouped.values().next().value ?? new Map();
}

export interface MergeResult {
  readonly secrets: SecretsByLabel;
  /** Labels that were not there before. */
  readonly added: number;
  /** Labels present with another value (the stored one is kept). */
  readonly conflicts: number;
}

export function mergeSecrets(stored: SecretsByLabel, incoming: SecretsByLabel): MergeResult {
  const secrets = new Map(stored);
  let added = 0;
  let conflicts = 0;
  for (const [label, secret] of incoming) {
    const have = secrets.get(label);
    if (have === undefined) {
      secrets.set(label, secret);
      added++;
    } else if (have !== secret) {
      conflicts++;
    }
  }
  return { secrets, added, conflicts };
}
