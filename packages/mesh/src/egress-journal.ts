/**
 * mirror-egress's durable state (`MIRROR_EGRESS_STATE_DIR`), so a killed egress restarts without losing or
 * repeating a packet in its capture files. One file, `egress-journal`, of JSON lines; each line a commit:
 *
 *   {"outputs": {"<file path>": <durable length>, ...}, "dedup": <FlowDedupState delta>}
 *
 * A commit is written after every capture file was flushed and fsynced (`sync()` of the egress's capture
 * outputs gives the durable length) and before the batches it covers are acked to the stitchers: a batch
 * acked is in the files for good and its frames' digests are in the journal. On start the journal is read
 * up to its last whole line (a line cut by a kill is dropped, and the file cut there), the files are resumed
 * at the lengths of the last commit (what a killed process wrote after it is cut off: those batches were
 * never acked, so the stitchers' JetStream messages bring them again), and the de-duplication state is
 * rebuilt, so the frames a stitcher sends again are dropped as copies. Once the journal passes `maxBytes`
 * it is rewritten as one snapshot line (written to a temporary file, fsynced, renamed).
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { mkdir, open, readFile, rename, truncate } from "node:fs/promises";
import { join } from "node:path";
import type { FlowDedupState } from "@cloudtap/mirror";

export const EGRESS_JOURNAL_FILE = "egress-journal";
export const DEFAULT_EGRESS_JOURNAL_MAX_BYTES = 64 * 1024 * 1024;

export interface EgressJournalCommit {
  /** Durable length of each capture file, by path. */
  readonly outputs: Readonly<Record<string, number>>;
  readonly dedup: FlowDedupState;
}

export interface LoadedEgressJournal {
  /** Lengths of the last commit, by path (empty: a first start). */
  readonly outputs: Readonly<Record<string, number>>;
  /** Every commit's de-duplication state, in order (apply with `FlowDedup.load`). */
  readonly dedup: readonly FlowDedupState[];
  /** Commits read; lines dropped because a kill cut them. */
  readonly commits: number;
  readonly tornLines: number;
}

export class EgressJournal {
  private bytes: number;
  private constructor(
    readonly dir: string,
    private fd: Awaited<ReturnType<typeof open>>,
    size: number,
    private readonly maxBytes: number,
  ) {
    this.bytes = size;
  }

  /** Reads what the journal holds (cutting off a torn last line) and opens it to append. */
  static async open(
    dir: string,
    options: { maxBytes?: number } = {},
  ): Promise<{ journal: EgressJournal; loaded: LoadedEgressJournal }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, EGRESS_JOURNAL_FILE);
    const text = await readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return "";
      throw err;
    });
    let outputs: Record<string, number> = {};
    const dedup: FlowDedupState[] = [];
    let good = 0;
    let commits = 0;
    let tornLines = 0;
    let at = 0;
    while (at < text.length) {
      const nl = text.indexOf("\n", at);
      if (nl < 0) {
        tornLines++;
        break;
      }
      let commit: EgressJournalCommit;
      try {
        commit = JSON.parse(text.slice(at, nl)) as EgressJournalCommit;
      } catch {
        tornLines++;
        break;
      }
      outputs = { ...outputs, ...commit.outputs };
      dedup.push(commit.dedup);
      commits++;
      at = nl + 1;
      good = Buffer.byteLength(text.slice(0, at), "utf8");
    }
    if (tornLines > 0) await truncate(path, good);
    const fd = await open(path, "a", 0o600);
    return {
      journal: new EgressJournal(dir, fd, good, options.maxBytes ?? DEFAULT_EGRESS_JOURNAL_MAX_BYTES),
      loaded: { outputs, dedup, commits, tornLines },
    };
  }

  get size(): number {
    return this.bytes;
  }

  /** Whether the next commit should be a snapshot (the journal passed its bound). */
  get wantsSnapshot(): boolean {
    return this.bytes > this.maxBytes;
  }

  /** Appends a commit and fsyncs it. */
  async commit(c: EgressJournalCommit): Promise<void> {
    const line = `${JSON.stringify(c)}\n`;
    await this.fd.write(line);
    await this.fd.datasync();
    this.bytes += Buffer.byteLength(line, "utf8");
  }

  /** Replaces the journal by one commit holding the whole state. */
  async rewrite(c: EgressJournalCommit): Promise<void> {
    const path = join(this.dir, EGRESS_JOURNAL_FILE);
    const tmp = `${path}.tmp`;
    const line = `${JSON.stringify(c)}\n`;
    const out = await open(tmp, "w", 0o600);
    try {
      await out.write(line);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, path);
    const dirFd = openSync(this.dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    await this.fd.close();
    this.fd = await open(path, "a", 0o600);
    this.bytes = Buffer.byteLength(line, "utf8");
  }

  async close(): Promise<void> {
    await this.fd.close();
  }
}
