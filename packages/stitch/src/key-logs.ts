/**
 * Key logs into a run's key store, with what each one-process reader reports about them: every line is
 * parsed by @cloudtap/tls's one parser, skipped lines are a problem of their object (count, then the first
 * few by line number and reason, never their content), and the counts cover every line (no cap).
 */
import type { BlobProblem, KeyLogText } from "@cloudtap/fetch";
import { describeKeyLogSkips, type KeyStore } from "@cloudtap/tls";
import type { KeyLogCounters } from "./run-report.js";

/** The problem kind of a key log with skipped (malformed or unknown-label) lines. */
export const MALFORMED_KEY_LOG_LINES = "key-log-malformed-lines";

export interface KeyLogsAdded {
  readonly counters: KeyLogCounters;
  /** One per key log with skipped lines. */
  readonly problems: readonly BlobProblem[];
}

/** Adds every key log to the store (time `nowMs` of the store's clock) and reports them. */
export function addKeyLogs(store: KeyStore, keyLogs: readonly KeyLogText[], nowMs = 0): KeyLogsAdded {
  let lines = 0;
  let malformed = 0;
  let conflicts = 0;
  const problems: BlobProblem[] = [];
  for (const { key, text } of keyLogs) {
    const added = store.addKeyLog(text, nowMs);
    lines += added.added;
    conflicts += added.conflicts;
    malformed += added.parse.skippedLines;
    const said = describeKeyLogSkips({ skippedLines: added.skippedLines, stats: added.parse });
    if (said) problems.push({ blob: key, kind: MALFORMED_KEY_LOG_LINES, message: said });
  }
  return { counters: { objects: keyLogs.length, lines, malformed, conflicts }, problems };
}
