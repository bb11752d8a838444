/**
 * The key log format of RFC 9850 (the NSS `SSLKEYLOGFILE` format): one `<label> <client_random> <secret>` line
 * per secret, hex in either case, `#` comments, blank lines, and LF, CRLF or CR line ends.
 *
 * Malformed lines are skipped and counted with their line number and a problem code. Nothing derived from a
 * line's content (other than a recognised label) is ever put into a skipped-line record, so they can be
 * logged without leaking secrets.
 */
import { hexToBytes } from "./hex.js";

export const KeyLogLabel = {
  /** TLS 1.0-1.2: the 48-byte master secret. */
  ClientRandom: "CLIENT_RANDOM",
  ClientEarlyTrafficSecret: "CLIENT_EARLY_TRAFFIC_SECRET",
  ClientHandshakeTrafficSecret: "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
  ServerHandshakeTrafficSecret: "SERVER_HANDSHAKE_TRAFFIC_SECRET",
  ClientTrafficSecret0: "CLIENT_TRAFFIC_SECRET_0",
  ServerTrafficSecret0: "SERVER_TRAFFIC_SECRET_0",
  EarlyExporterSecret: "EARLY_EXPORTER_SECRET",
  ExporterSecret: "EXPORTER_SECRET",
  /** Encrypted Client Hello: the HPKE shared secret. */
  EchSecret: "ECH_SECRET",
  /** Encrypted Client Hello: the ECHConfig used (not secret, but logged the same way). */
  EchConfig: "ECH_CONFIG",
} as const;
export type KeyLogLabel = (typeof KeyLogLabel)[keyof typeof KeyLogLabel];

const LABELS: ReadonlySet<string> = new Set(Object.values(KeyLogLabel));

export function isKeyLogLabel(value: string): value is KeyLogLabel {
  return LABELS.has(value);
}

export const KeyLogProblem = {
  /** Not exactly three fields. */
  FieldCount: "field-count",
  /** A label this parser does not know (RFC 9850 asks readers to ignore those lines). */
  UnknownLabel: "unknown-label",
  /** The second field is not 64 hex digits. */
  BadClientRandom: "bad-client-random",
  /** The third field is not an even number of hex digits. */
  BadHex: "bad-hex",
  /** The secret's length does not fit its label (48 bytes for CLIENT_RANDOM, 32/48/64 for TLS 1.3 secrets). */
  BadSecretLength: "bad-secret-length",
  /** Longer than `maxLineLength`; skipped without being buffered. */
  LineTooLong: "line-too-long",
} as const;
export type KeyLogProblem = (typeof KeyLogProblem)[keyof typeof KeyLogProblem];

export interface KeyLogEntry {
  readonly label: KeyLogLabel;
  /** 32 bytes. */
  readonly clientRandom: Uint8Array;
  readonly secret: Uint8Array;
  /** 1-based line number in the parsed text. */
  readonly line: number;
}

/** A line that was skipped. Carries no content of the line except a recognised label. */
export interface KeyLogSkippedLine {
  readonly line: number;
  readonly problem: KeyLogProblem;
  readonly label?: KeyLogLabel;
}

export interface KeyLogStats {
  lines: number;
  entries: number;
  comments: number;
  blankLines: number;
  skippedLines: number;
  skippedByProblem: Record<KeyLogProblem, number>;
}

export interface KeyLogParserOptions {
  /** Longest line accepted, in characters (an ECH_CONFIG line is the longest legitimate one). Default 16384. */
  readonly maxLineLength?: number;
  /** How many skipped-line records are kept (all are counted). Default 100. */
  readonly maxSkippedLinesKept?: number;
}

export const DEFAULT_KEY_LOG_PARSER_OPTIONS: Required<KeyLogParserOptions> = {
  maxLineLength: 16384,
  maxSkippedLinesKept: 100,
};

export interface KeyLogParser {
  /** Parses a chunk; a line split across chunks is completed by a later push. Returns the complete entries. */
  push(chunk: string | Uint8Array): KeyLogEntry[];
  /** Parses the last line if it had no line end. */
  end(): KeyLogEntry[];
  readonly stats: Readonly<KeyLogStats>;
  /** The first `maxSkippedLinesKept` skipped lines. */
  readonly skippedLines: readonly KeyLogSkippedLine[];
}

export interface KeyLogParseResult {
  readonly entries: KeyLogEntry[];
  readonly skippedLines: readonly KeyLogSkippedLine[];
  readonly stats: Readonly<KeyLogStats>;
}

/** Parses a whole key log. */
export function parseKeyLog(text: string | Uint8Array, options: KeyLogParserOptions = {}): KeyLogParseResult {
  const parser = createKeyLogParser(options);
  const entries = parser.push(text);
  for (const e of parser.end()) entries.push(e);
  return { entries, skippedLines: parser.skippedLines, stats: parser.stats };
}

/** Human-readable form of a skipped line for logs, e.g. `line 7: bad-hex (CLIENT_RANDOM)`. */
export function describeSkippedLine(s: KeyLogSkippedLine): string {
  return `line ${s.line}: ${s.problem}${s.label ? ` (${s.label})` : ""}`;
}

/** How many skipped lines `describeKeyLogSkips` lists one by one by default (all are counted). */
export const DEFAULT_SKIPPED_LINES_LISTED = 10;

/**
 * One sentence for a key log's skipped lines, as every reader reports them (stitch, inspect, ingest, the
 * key-broker): the count of all skipped lines, then the first `maxListed` by line number and reason, e.g.
 * `3 line(s) skipped: line 2: bad-hex (CLIENT_RANDOM); line 5: field-count; line 9: unknown-label`.
 * Undefined when no line was skipped. Carries no content of any line (only recognised labels).
 */
export function describeKeyLogSkips(
  result: Pick<KeyLogParseResult, "skippedLines" | "stats">,
  maxListed: number = DEFAULT_SKIPPED_LINES_LISTED,
): string | undefined {
  const total = result.stats.skippedLines;
  if (total === 0) return undefined;
  const listed = result.skippedLines.slice(0, Math.max(0, maxListed));
  const more = total - listed.length;
  return `${total} line(s) skipped: ${listed.map(describeSkippedLine).join("; ")}${more > 0 ? `${listed.length ? "; " : ""}and ${more} more` : ""}`;
}

const CR = 13;
const LF = 10;

export function createKeyLogParser(options: KeyLogParserOptions = {}): KeyLogParser {
  const maxLineLength = options.maxLineLength ?? DEFAULT_KEY_LOG_PARSER_OPTIONS.maxLineLength;
  const maxKept = options.maxSkippedLinesKept ?? DEFAULT_KEY_LOG_PARSER_OPTIONS.maxSkippedLinesKept;
  const stats: KeyLogStats = {
    lines: 0,
    entries: 0,
    comments: 0,
    blankLines: 0,
    skippedLines: 0,
    skippedByProblem: {
      "field-count": 0,
      "unknown-label": 0,
      "bad-client-random": 0,
      "bad-hex": 0,
      "bad-secret-length": 0,
      "line-too-long": 0,
    },
  };
  const skipped: KeyLogSkippedLine[] = [];
  const decoder = new TextDecoder("utf-8", { fatal: false });
  /** Text of the current, unterminated line. */
  let partial = "";
  /** The current line exceeded maxLineLength: its text is being dropped until its end. */
  let overlong = false;
  /** The previous chunk ended with CR: a LF starting the next chunk belongs to the same line end. */
  let afterCr = false;

  function skip(line: number, problem: KeyLogProblem, label?: KeyLogLabel): void {
    stats.skippedLines++;
    stats.skippedByProblem[problem]++;
    if (skipped.length < maxKept) skipped.push(label ? { line, problem, label } : { line, problem });
  }

  function finishLine(text: string, out: KeyLogEntry[]): void {
    const line = ++stats.lines;
    if (overlong) {
      overlong = false;
      skip(line, KeyLogProblem.LineTooLong);
      return;
    }
    const trimmed = text.trim();
    if (trimmed.length === 0) {
      stats.blankLines++;
      return;
    }
    if (trimmed.charCodeAt(0) === 0x23 /* # */) {
      stats.comments++;
      return;
    }
    const fields = trimmed.split(/[ \t]+/);
    if (fields.length !== 3) {
      const first = fields[0] ?? "";
      skip(line, KeyLogProblem.FieldCount, isKeyLogLabel(first) ? first : undefined);
      return;
    }
    const [label, randomHex, secretHex] = fields as [string, string, string];
    if (!isKeyLogLabel(label)) {
      skip(line, KeyLogProblem.UnknownLabel);
      return;
    }
    const clientRandom = randomHex.length === 64 ? hexToBytes(randomHex) : undefined;
    if (!clientRandom) {
      skip(line, KeyLogProblem.BadClientRandom, label);
      return;
    }
    const secret = hexToBytes(secretHex);
    if (!secret) {
      skip(line, KeyLogProblem.BadHex, label);
      return;
    }
    if (!secretLengthFits(label, secret.length)) {
      skip(line, KeyLogProblem.BadSecretLength, label);
      return;
    }
    stats.entries++;
    out.push({ label, clientRandom, secret, line });
  }

  function pushText(text: string, out: KeyLogEntry[]): void {
    let start = 0;
    let i = 0;
    if (afterCr && text.length > 0) {
      afterCr = false;
      if (text.charCodeAt(0) === LF) {
        start = 1;
        i = 1;
      }
    }
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== CR && c !== LF) continue;
      appendPartial(text, start, i);
      finishLine(partial, out);
      partial = "";
      if (c === CR) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === LF) i++;
        } else {
          afterCr = true;
        }
      }
      start = i + 1;
    }
    appendPartial(text, start, text.length);
  }

  function appendPartial(text: string, from: number, to: number): void {
    if (overlong || to <= from) return;
    if (partial.length + (to - from) > maxLineLength) {
      overlong = true;
      partial = "";
      return;
    }
    partial += text.slice(from, to);
  }

  return {
    push(chunk) {
      const out: KeyLogEntry[] = [];
      pushText(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }), out);
      return out;
    },
    end() {
      const out: KeyLogEntry[] = [];
      pushText(decoder.decode(), out);
      if (partial.length > 0 || overlong) finishLine(partial, out);
      partial = "";
      afterCr = false;
      return out;
    },
    get stats() {
      return stats;
    },
    get skippedLines() {
      return skipped;
    },
  };
}

function secretLengthFits(label: KeyLogLabel, length: number): boolean {
  switch (label) {
    case KeyLogLabel.ClientRandom:
      return length === 48;
    case KeyLogLabel.EchConfig:
      return length > 0;
    default:
      return length === 32 || length === 48 || length === 64;
  }
}
