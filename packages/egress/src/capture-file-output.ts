/**
 * One pcap or pcapng file (node adapter). Written as `<path>.partial` and renamed to `<path>` when closed,
 * so a reader never sees a half-written capture under the final name; `abort()` removes the partial file. A
 * pcapng that embeds TLS keys (Decryption Secrets Blocks before the packets they decrypt), and a file of
 * either format that carries decrypted content (`decryptedContent`), is created mode 0600: it is as sensitive
 * as the key log. Other files are created 0666 less the umask.
 */
import { rename, rm, stat } from "node:fs/promises";
import type { CaptureEncoder } from "@cloudtap/pcap";
import {
  type CaptureEncoderSettings,
  type CaptureFormat,
  checkCaptureFormat,
  createCaptureEncoder,
  isPcapngEncoder,
} from "./capture-format.js";
import type { EgressOutput, OutputReport } from "./egress-output.js";
import { EgressError, EgressErrorCode } from "./errors.js";
import { PositionedFileWriter, PUBLIC_FILE_MODE, SECRET_FILE_MODE } from "./file-writer.js";

/** Bytes of writes in flight, so that file writes overlap with packet synthesis. */
export const DEFAULT_WRITE_BUFFER_BYTES = 16 * 1024 * 1024;

export interface CaptureFileOutputOptions extends Omit<CaptureEncoderSettings, "format"> {
  readonly path: string;
  readonly format: CaptureFormat;
  /** pcapng only: write the TLS keys handed to `embedKeys` (the file is then mode 0600). Default false. */
  readonly embedKeys?: boolean;
  /** The packets carry decrypted content (a cleartext variant with keys): the file is mode 0600. */
  readonly decryptedContent?: boolean;
  readonly writeBufferBytes?: number;
  /**
   * Resume a file written before (a continuous run started again): `<path>.partial` (or `<path>`, moved
   * back to `.partial`) is cut to this many bytes and written on, without a second file header. Only bytes
   * a `sync()` returned are a sound place to resume from.
   */
  readonly resumeAt?: number;
}

export class CaptureFileOutput implements EgressOutput {
  readonly name: string;
  readonly kind: CaptureFormat;
  readonly embedsKeys: boolean;
  readonly path: string;
  private readonly encoder: CaptureEncoder;
  private out: PositionedFileWriter | undefined;
  private opening: Promise<PositionedFileWriter> | undefined;
  private readonly writeBufferBytes: number;
  private foreignPackets = 0;
  private foreignBytes = 0;
  private done = false;
  private keyBlocks = 0;
  private readonly resumeAt: number | undefined;
  /** Keys or decrypted content inside: created owner-only. */
  private readonly secret: boolean;

  constructor(options: CaptureFileOutputOptions) {
    this.kind = checkCaptureFormat(options.format, "capture file");
    this.path = options.path;
    this.name = `${this.kind}:${options.path}`;
    this.resumeAt = options.resumeAt;
    const resuming = this.resumeAt !== undefined && this.resumeAt > 0;
    this.encoder = createCaptureEncoder({
      ...options,
      format: this.kind,
      ...(resuming ? { fileHeader: false } : {}),
    });
    this.embedsKeys = options.embedKeys === true && isPcapngEncoder(this.encoder);
    this.secret = this.embedsKeys || options.decryptedContent === true;
    this.writeBufferBytes = options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES;
  }

  begin(length: number): Uint8Array {
    return this.encoder.begin(length);
  }

  beginAt(length: number): number {
    return this.encoder.beginAt(length);
  }

  get buffer(): Uint8Array {
    return this.encoder.buffer;
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.encoder.commit(timestampNs, offsetNs, originalLength);
  }

  embedKeys(keyLogText: string): void {
    if (!this.embedsKeys || !isPcapngEncoder(this.encoder)) return;
    this.encoder.writeTlsKeyLog(keyLogText);
    this.keyBlocks++;
  }

  drain(): Uint8Array[] {
    return this.encoder.drain();
  }

  flush(): Uint8Array[] {
    return this.encoder.flush();
  }

  private failed(err: unknown): EgressError {
    const e = err instanceof Error ? err : new Error(String(err));
    return new EgressError(EgressErrorCode.OpenFailed, `writing ${this.path}: ${e.message}`, { cause: e });
  }

  /** The partial file, created on the first write (mode 0600 when it holds keys or decrypted content). */
  private file(): PositionedFileWriter | Promise<PositionedFileWriter> {
    if (this.out) return this.out;
    const partial = `${this.path}.partial`;
    const resumeAt = this.resumeAt;
    this.opening ??= (
      resumeAt === undefined
        ? PositionedFileWriter.open(
            partial,
            this.secret ? SECRET_FILE_MODE : PUBLIC_FILE_MODE,
            this.writeBufferBytes,
          )
        : this.reopen(partial, resumeAt)
    ).then((w) => {
      this.out = w;
      return w;
    });
    return this.opening;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.done) throw new EgressError(EgressErrorCode.Misuse, `${this.path}: write after close`);
    try {
      const out = this.out ?? (await this.file());
      // The encoder reuses the chunk's buffer once the file has it.
      const wait = out.write(chunk, () => this.encoder.recycle(chunk));
      if (wait) await wait;
    } catch (err) {
      throw this.failed(err);
    }
  }

  /**
   * Writes records that did not come from this output's encoder: the merged records of header-less encoders
   * (the stitch workers' shards), `packets` of them, after this output's own header (`flush()` first). `done`
   * runs when `chunk`'s buffer may be reused.
   */
  async writeRecords(chunk: Uint8Array, packets: number, done?: () => void): Promise<void> {
    if (this.done) throw new EgressError(EgressErrorCode.Misuse, `${this.path}: write after close`);
    try {
      const out = this.out ?? (await this.file());
      this.foreignPackets += packets;
      this.foreignBytes += chunk.length;
      const wait = out.write(chunk, done);
      if (wait) await wait;
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** The file a resumed output writes on: its partial file, or the renamed one moved back, or a new one. */
  private async reopen(partial: string, resumeAt: number): Promise<PositionedFileWriter> {
    const exists = (p: string) =>
      stat(p).then(
        () => true,
        () => false,
      );
    if (!(await exists(partial))) {
      if (await exists(this.path))
        await rename(this.path, partial); // stopped cleanly: the file was complete
      else if (resumeAt > 0)
        throw new EgressError(EgressErrorCode.OpenFailed, `${this.path}: the file to resume is gone`);
      else
        return PositionedFileWriter.open(
          partial,
          this.secret ? SECRET_FILE_MODE : PUBLIC_FILE_MODE,
          this.writeBufferBytes,
        );
    }
    return PositionedFileWriter.resume(partial, resumeAt, this.writeBufferBytes);
  }

  /**
   * Waits for every chunk handed to `write` and fsyncs the file: the bytes it holds for good (where a
   * resumed run may start, `resumeAt`). Write what `flush()` returned first to include every frame.
   */
  async sync(): Promise<number> {
    if (!this.out && !this.opening) return this.resumeAt ?? 0;
    try {
      return await (await this.file()).sync();
    } catch (err) {
      throw this.failed(err);
    }
  }

  async close(): Promise<void> {
    if (this.done) return;
    for (const c of this.flush()) await this.write(c);
    this.done = true;
    try {
      await (await this.file()).close();
    } catch (err) {
      throw this.failed(err);
    }
    await rename(`${this.path}.partial`, this.path);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    const out = this.out ?? (this.opening ? await this.opening.catch(() => undefined) : undefined);
    await out?.destroy();
    await rm(`${this.path}.partial`, { force: true });
  }

  report(): OutputReport {
    return {
      name: this.name,
      kind: this.kind,
      path: this.path,
      packets: this.encoder.packetsWritten + this.foreignPackets,
      bytes: this.encoder.bytesWritten + this.foreignBytes,
      keyBlocks: this.keyBlocks,
    };
  }
}

export function createCaptureFileOutput(options: CaptureFileOutputOptions): CaptureFileOutput {
  return new CaptureFileOutput(options);
}
