/**
 * Writes the TLS secrets of the tapped connections to the key store as NSS key log files (the SSLKEYLOGFILE
 * format, RFC 9850), in batches per tapper. Normally a batch is written once it holds `batchConnections`
 * connections, so keys land while data blobs are still being written, some before and some after the data
 * they unlock. With `late`, every batch is held back and written after all data, under key names whose time
 * lies after the last data blob.
 */
import type { ObjectStore } from "@cloudtap/object-store";
import { keyLogKey } from "@cloudtap/tap-format";

export interface KeyLogRecorderOptions {
  readonly store: ObjectStore;
  readonly prefix: string;
  readonly batchConnections: number;
  readonly late: boolean;
}

export interface WrittenKeyLog {
  readonly key: string;
  readonly tapperId: string;
  readonly connections: number;
  readonly lines: number;
}

interface Batch {
  startNs: bigint;
  readonly lines: string[];
  connections: number;
}

export class KeyLogRecorder {
  private readonly batches = new Map<string, Batch>();
  private readonly held: { tapperId: string; batch: Batch }[] = [];
  private readonly sequences = new Map<string, bigint>();
  private readonly written: WrittenKeyLog[] = [];
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(private readonly options: KeyLogRecorderOptions) {
    if (!(options.batchConnections >= 1)) throw new RangeError("batchConnections must be at least 1");
  }

  /** Adds the key log lines of one connection, recorded by `tapperId`, that started at `startNs`. */
  add(tapperId: string, startNs: bigint, lines: readonly string[]): void {
    if (lines.length === 0) return;
    let batch = this.batches.get(tapperId);
    if (!batch) {
      batch = { startNs, lines: [], connections: 0 };
      this.batches.set(tapperId, batch);
    }
    if (startNs < batch.startNs) batch.startNs = startNs;
    batch.lines.push(...lines);
    batch.connections++;
    if (batch.connections >= this.options.batchConnections) {
      this.batches.delete(tapperId);
      if (this.options.late) this.held.push({ tapperId, batch });
      else this.enqueue(tapperId, batch.startNs, batch);
    }
  }

  /** Rejects with the first write error, if any. */
  check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private enqueue(tapperId: string, startNs: bigint, batch: Batch): void {
    const sequence = this.sequences.get(tapperId) ?? 0n;
    this.sequences.set(tapperId, sequence + 1n);
    const key = keyLogKey(this.options.prefix, tapperId, startNs, sequence);
    const body = new TextEncoder().encode(`${batch.lines.join("\n")}\n`);
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return;
      try {
        // Keys: owner-only where the store has file modes.
        await this.options.store.write(key, body, { sensitive: true });
        this.written.push({ key, tapperId, connections: batch.connections, lines: batch.lines.length });
      } catch (err) {
        this.failure = err;
      }
    });
  }

  /**
   * Writes what is left. `lateStartNs` is the key time of late batches (after the last data blob); each later
   * batch gets a key time one millisecond further on.
   */
  async finish(lateStartNs: bigint): Promise<readonly WrittenKeyLog[]> {
    for (const [tapperId, batch] of this.batches) {
      if (this.options.late) this.held.push({ tapperId, batch });
      else this.enqueue(tapperId, batch.startNs, batch);
    }
    this.batches.clear();
    this.held.forEach(({ tapperId, batch }, i) => {
      this.enqueue(tapperId, lateStartNs + BigInt(i) * 1_000_000n, batch);
    });
    this.held.length = 0;
    await this.chain;
    this.check();
    return this.written;
  }
}
