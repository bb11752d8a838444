import type { ObjectStore } from "@cloudtap/object-store";
import { keyLogKey } from "@cloudtap/tap-format";
import { describeKeyLogSkips, parseKeyLog } from "@cloudtap/tls";
import { type IngestProblem, IngestProblemKind, type WrittenKeyLog } from "./summary.js";

export interface KeyLogWriterOptions {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly tapperId: string;
  readonly signal?: AbortSignal;
}

const encoder = new TextEncoder();

/**
 * Writes key logs as objects under `<prefix>/keys/`, one object per key log. A key's time is the capture
 * time when it was met: key logs met before the first packet wait for it (and fall back to 0 if the capture
 * holds no packet). The text is stored as given (a sensitive object: 0600 in a directory store) and never
 * logged; it is parsed with the readers' parser, and lines they will skip are reported as problems (line
 * numbers and reasons, never content).
 */
export class KeyLogWriter {
  readonly #options: KeyLogWriterOptions;
  readonly #waiting: { text: string; source: WrittenKeyLog["source"] }[] = [];
  #nowNs: bigint | undefined;
  #sequence = 0n;
  readonly written: WrittenKeyLog[] = [];
  readonly problems: IngestProblem[] = [];

  constructor(options: KeyLogWriterOptions) {
    this.#options = options;
  }

  async add(text: string, source: WrittenKeyLog["source"]): Promise<void> {
    if (this.#nowNs === undefined) this.#waiting.push({ text, source });
    else await this.#write(text, source, this.#nowNs);
  }

  /** Sets the current capture time; the first call releases the key logs waiting for a time. */
  async setTime(nowNs: bigint): Promise<void> {
    if (this.#nowNs !== undefined && nowNs <= this.#nowNs) return;
    this.#nowNs = nowNs;
    while (this.#waiting.length > 0) {
      const next = this.#waiting.shift()!;
      await this.#write(next.text, next.source, nowNs);
    }
  }

  /** Writes the key logs still waiting (the capture held no packet: their time is 0). */
  async close(): Promise<void> {
    if (this.#nowNs === undefined) await this.setTime(0n);
  }

  async #write(text: string, source: WrittenKeyLog["source"], startNs: bigint): Promise<void> {
    const key = keyLogKey(this.#options.prefix, this.#options.tapperId, startNs, this.#sequence++);
    const body = encoder.encode(text);
    const parsed = parseKeyLog(body);
    await this.#options.store.write(key, body, {
      sensitive: true,
      ...(this.#options.signal ? { signal: this.#options.signal } : {}),
    });
    this.written.push({
      key,
      bytes: body.length,
      source,
      secrets: parsed.stats.entries,
      skippedLines: parsed.stats.skippedLines,
    });
    const said = describeKeyLogSkips(parsed);
    if (said) this.problems.push({ where: key, kind: IngestProblemKind.KeyLogMalformedLines, message: said });
  }
}
