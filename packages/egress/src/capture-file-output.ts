/**
 * One pcap or pcapng file (node adapter). Written as `<path>.partial` and renamed to `<path>` when closed,
 * so a reader never sees a half-written capture under the final name; `abort()` removes the partial file. A
 * pcapng that embeds TLS keys (Decryption Secrets Blocks before the packets they decrypt) is created mode
 * 0600: it is as sensitive as the key log.
 */
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
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

/** Bytes the file stream buffers, so that file writes overlap with packet synthesis. */
export const DEFAULT_WRITE_BUFFER_BYTES = 8 * 1024 * 1024;

export interface CaptureFileOutputOptions extends Omit<CaptureEncoderSettings, "format"> {
  readonly path: string;
  readonly format: CaptureFormat;
  /** pcapng only: write the TLS keys handed to `embedKeys` (the file is then mode 0600). Default false. */
  readonly embedKeys?: boolean;
  readonly writeBufferBytes?: number;
}

export class CaptureFileOutput implements EgressOutput {
  readonly name: string;
  readonly kind: CaptureFormat;
  readonly embedsKeys: boolean;
  readonly path: string;
  private readonly encoder: CaptureEncoder;
  private readonly out: WriteStream;
  private failure: Error | undefined;
  private done = false;
  private keyBlocks = 0;

  constructor(options: CaptureFileOutputOptions) {
    this.kind = checkCaptureFormat(options.format, "capture file");
    this.path = options.path;
    this.name = `${this.kind}:${options.path}`;
    this.encoder = createCaptureEncoder({ ...options, format: this.kind });
    this.embedsKeys = options.embedKeys === true && isPcapngEncoder(this.encoder);
    this.out = createWriteStream(`${this.path}.partial`, {
      mode: this.embedsKeys ? 0o600 : 0o644,
      highWaterMark: options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES,
    });
    this.out.on("error", (err) => {
      this.failure ??= err;
    });
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

  private check(): void {
    if (this.failure) {
      throw new EgressError(EgressErrorCode.OpenFailed, `writing ${this.path}: ${this.failure.message}`, {
        cause: this.failure,
      });
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.check();
    if (this.done) throw new EgressError(EgressErrorCode.Misuse, `${this.path}: write after close`);
    // The encoder reuses the chunk's buffer once the file has it.
    if (!this.out.write(chunk, () => this.encoder.recycle(chunk))) await once(this.out, "drain");
  }

  async close(): Promise<void> {
    if (this.done) return;
    for (const c of this.flush()) await this.write(c);
    this.done = true;
    this.out.end();
    await once(this.out, "finish");
    this.check();
    await rename(`${this.path}.partial`, this.path);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.out.destroy();
    await rm(`${this.path}.partial`, { force: true });
  }

  report(): OutputReport {
    return {
      name: this.name,
      kind: this.kind,
      path: this.path,
      packets: this.encoder.packetsWritten,
      bytes: this.encoder.bytesWritten,
      keyBlocks: this.keyBlocks,
    };
  }
}

export function createCaptureFileOutput(options: CaptureFileOutputOptions): CaptureFileOutput {
  return new CaptureFileOutput(options);
}
