/**
 * Capture files rotated by size and/or time (node adapter), as an NDR's file watcher or an archive wants them.
 *
 * - Names: `<prefix>-<YYYYMMDD>T<HHMMSS>Z-<seq>.<pcap|pcapng>`, the UTC time of the file's first packet and
 *   a sequence number (6 digits, from 1, per run), so names sort by time and never collide.
 * - A file is written as `<name>.partial` and renamed when complete: a watcher that ignores `*.partial`
 *   only ever sees whole files. `abort()` removes partial files.
 * - Size: a file never grows past `rotateBytes` (unless a single packet does); the packet that would pass it
 *   starts the next file. Time: files end on multiples of `rotateNs` of packet time (hourly files end on the
 *   hour), at the first packet at or after the boundary. Packets come in stitch order, which follows time
 *   closely but not exactly: a late packet stays in the current file.
 * - pcapng with `embedKeys`: files are created mode 0600, and each file starts with the TLS keys of the flows
 *   still active when it was opened, so every file decrypts on its own (bounded by `maxCarriedKeyBytes`).
 *   Files of either format with `decryptedContent` are created 0600 too; others 0666 less the umask.
 * - `upload`: each completed file is written to an object store under `upload.prefix` + its name (in the
 *   background, one at a time; `close()` waits for them), and removed locally if `removeLocal`. A file with
 *   keys or decrypted content is uploaded as a sensitive object (0600 in a directory store).
 */
import { createReadStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { FrameFlowContext, FrameSink } from "@cloudtap/packet";
import type { CaptureEncoder } from "@cloudtap/pcap";
import { DEFAULT_WRITE_BUFFER_BYTES } from "./capture-file-output.js";
import {
  type CaptureEncoderSettings,
  type CaptureFormat,
  checkCaptureFormat,
  createCaptureEncoder,
  isPcapngEncoder,
  recordBytes,
} from "./capture-format.js";
import type { EgressOutput, OutputReport } from "./egress-output.js";
import { EgressError, EgressErrorCode } from "./errors.js";
import { PositionedFileWriter, PUBLIC_FILE_MODE, SECRET_FILE_MODE } from "./file-writer.js";

export const DEFAULT_MAX_CARRIED_KEY_BYTES = 16 * 1024 * 1024;

/** The part of an ObjectStore an upload needs (any @cloudtap/object-store backend fits). */
export interface UploadStore {
  readonly url: string;
  write(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    options?: { readonly sensitive?: boolean },
  ): Promise<void>;
}

export interface ClosedCaptureFile {
  readonly path: string;
  readonly name: string;
  readonly packets: number;
  readonly bytes: number;
  /** Unix ns of the first packet. */
  readonly firstPacketNs: bigint;
}

export interface RotatingFileOutputOptions extends Omit<CaptureEncoderSettings, "format"> {
  readonly dir: string;
  readonly format: CaptureFormat;
  /** Default "cloudtap". */
  readonly prefix?: string;
  readonly rotateBytes?: number;
  readonly rotateNs?: bigint;
  /** pcapng only: write TLS keys (files are then mode 0600). */
  readonly embedKeys?: boolean;
  /** The packets carry decrypted content (a cleartext variant with keys): files are mode 0600. */
  readonly decryptedContent?: boolean;
  readonly maxCarriedKeyBytes?: number;
  readonly upload?: { readonly store: UploadStore; readonly prefix?: string; readonly removeLocal?: boolean };
  /** Called when a file is complete under its final name (before any upload). */
  readonly onFileClosed?: (file: ClosedCaptureFile) => void;
  readonly writeBufferBytes?: number;
}

class Segment {
  name: string | undefined;
  firstNs = 0n;
  /** Packet time at which the file ends (time rotation). */
  endNs: bigint | undefined;
  packets = 0;
  stream: PositionedFileWriter | undefined;
  /** Chunks handed out and not yet written. */
  outstanding = 0;
  sealed = false;
  /** Chunks of a sealed segment, waiting to be handed out. */
  readonly tail: Uint8Array[] = [];
  failure: Error | undefined;
  finished = false;

  constructor(
    readonly seq: number,
    readonly encoder: CaptureEncoder,
  ) {}
}

/** One flow seen by the rotating output: its keys are carried into each new file while it lasts. */
class RotatingFlowSink implements FrameSink {
  keys = "";
  constructor(private readonly out: RotatingFileOutput) {}
  get buffer(): Uint8Array {
    return this.out.buffer;
  }
  beginAt(length: number): number {
    return this.out.beginAt(length);
  }
  begin(length: number): Uint8Array {
    return this.out.begin(length);
  }
  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.out.commit(timestampNs, offsetNs, originalLength);
    this.out.lastFlow = this;
  }
  end(): void {
    this.out.flowEnded(this);
  }
}

function utcName(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString(); // 2026-11-25T10:00:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

export class RotatingFileOutput implements EgressOutput {
  readonly name: string;
  readonly kind = "rotating";
  readonly embedsKeys: boolean;
  /** Keys or decrypted content inside: files created owner-only, uploads sensitive. */
  private readonly secret: boolean;
  private readonly format: CaptureFormat;
  private readonly prefix: string;
  private current: Segment | undefined;
  /** Sealed segments whose last chunks are not yet handed out. */
  private readonly sealed: Segment[] = [];
  /** Sealed segments whose file is not yet complete, oldest first. */
  private readonly unfinished: Segment[] = [];
  private readonly owner = new Map<Uint8Array, Segment>();
  private seq = 0;
  /** The frame being built: in the current file's chunk, at an offset. */
  private frameBuffer: Uint8Array = new Uint8Array(0);
  private frameAt = 0;
  private frameLength = 0;
  /** Flows with keys, while they last. */
  private readonly keyed = new Set<RotatingFlowSink>();
  private carriedKeyBytes = 0;
  private uploads: Promise<void> = Promise.resolve();
  private done = false;
  /** The flow that committed the last packet: `embedKeys` follows the packet that carried its ClientHello. */
  lastFlow: RotatingFlowSink | undefined;

  filesClosed = 0;
  packets = 0;
  bytes = 0;
  keyBlocks = 0;
  keysNotCarried = 0;
  uploaded = 0;
  uploadFailures = 0;
  lastUploadError: string | undefined;
  readonly closedFiles: ClosedCaptureFile[] = [];

  constructor(private readonly options: RotatingFileOutputOptions) {
    this.format = checkCaptureFormat(options.format, "rotating files");
    this.prefix = options.prefix ?? "cloudtap";
    if (!/^[A-Za-z0-9._-]+$/.test(this.prefix)) {
      throw new EgressError(
        EgressErrorCode.BadOption,
        `file prefix "${this.prefix}" must be letters, digits, . _ -`,
      );
    }
    if (
      options.rotateBytes !== undefined &&
      (!Number.isSafeInteger(options.rotateBytes) || options.rotateBytes < 4096)
    ) {
      throw new EgressError(EgressErrorCode.BadOption, `rotateBytes ${options.rotateBytes} is below 4096`);
    }
    if (options.rotateNs !== undefined && options.rotateNs < 1_000_000n) {
      throw new EgressError(EgressErrorCode.BadOption, `rotateNs ${options.rotateNs} is below 1 ms`);
    }
    this.embedsKeys = options.embedKeys === true && this.format === "pcapng";
    this.secret = this.embedsKeys || options.decryptedContent === true;
    this.name = `rotating-${this.format}:${options.dir}`;
  }

  private open(): Segment {
    const encoder = createCaptureEncoder({ ...this.options, format: this.format });
    const seg = new Segment(++this.seq, encoder);
    if (this.embedsKeys && this.keyed.size > 0 && isPcapngEncoder(encoder)) {
      let text = "";
      for (const f of this.keyed) text += f.keys;
      encoder.writeTlsKeyLog(text);
      this.keyBlocks++;
    }
    this.current = seg;
    return seg;
  }

  forFlow(_flow: FrameFlowContext): FrameSink & { end(): void } {
    return new RotatingFlowSink(this);
  }

  flowEnded(flow: RotatingFlowSink): void {
    if (this.keyed.delete(flow)) this.carriedKeyBytes -= flow.keys.length;
    if (this.lastFlow === flow) this.lastFlow = undefined;
  }

  get buffer(): Uint8Array {
    return this.frameBuffer;
  }

  beginAt(length: number): number {
    const seg = this.current ?? this.open();
    this.frameAt = seg.encoder.beginAt(length);
    this.frameBuffer = seg.encoder.buffer;
    this.frameLength = length;
    return this.frameAt;
  }

  begin(length: number): Uint8Array {
    const at = this.beginAt(length);
    return this.frameBuffer.subarray(at, at + length);
  }

  commit(timestampNs: bigint, offsetNs = 0, originalLength?: number): void {
    let seg = this.current!;
    const ts = offsetNs === 0 ? timestampNs : timestampNs + BigInt(offsetNs);
    const o = this.options;
    if (
      seg.packets > 0 &&
      ((seg.endNs !== undefined && ts >= seg.endNs) ||
        (o.rotateBytes !== undefined &&
          seg.encoder.bytesWritten + recordBytes(this.format, this.frameLength) > o.rotateBytes))
    ) {
      // The frame was built in the old file's chunk and never committed there: it moves to the next file.
      const frame = this.frameBuffer.subarray(this.frameAt, this.frameAt + this.frameLength);
      this.seal(seg);
      seg = this.open();
      seg.encoder.begin(frame.length).set(frame);
    }
    seg.encoder.commit(timestampNs, offsetNs, originalLength);
    if (seg.packets === 0) {
      seg.firstNs = ts;
      seg.name = `${this.prefix}-${utcName(ts)}-${String(seg.seq).padStart(6, "0")}.${this.format}`;
      if (o.rotateNs !== undefined) seg.endNs = (ts / o.rotateNs + 1n) * o.rotateNs;
    }
    seg.packets++;
    this.packets++;
    this.lastFlow = undefined;
  }

  embedKeys(keyLogText: string): void {
    if (!this.embedsKeys) return;
    const seg = this.current ?? this.open();
    if (isPcapngEncoder(seg.encoder)) {
      seg.encoder.writeTlsKeyLog(keyLogText);
      this.keyBlocks++;
    }
    const flow = this.lastFlow;
    const max = this.options.maxCarriedKeyBytes ?? DEFAULT_MAX_CARRIED_KEY_BYTES;
    if (flow === undefined || this.carriedKeyBytes + keyLogText.length > max) {
      this.keysNotCarried++;
      return;
    }
    flow.keys += keyLogText;
    this.carriedKeyBytes += keyLogText.length;
    this.keyed.add(flow);
  }

  /** The segment is complete: its last chunks wait to be handed out; the file is finished when written. */
  private seal(seg: Segment): void {
    seg.sealed = true;
    if (this.current === seg) this.current = undefined;
    if (seg.name === undefined) return; // no packet: no file
    seg.tail.push(...seg.encoder.flush());
    this.sealed.push(seg);
    this.unfinished.push(seg);
  }

  /** Completes, in order, every sealed file whose chunks have all been written. */
  private async finishReady(): Promise<void> {
    while (this.unfinished.length > 0) {
      const seg = this.unfinished[0]!;
      if (seg.outstanding > 0 || seg.tail.length > 0) return;
      this.unfinished.shift();
      await this.finish(seg);
    }
  }

  private handOut(seg: Segment, chunks: Uint8Array[], out: Uint8Array[]): void {
    for (const c of chunks) {
      this.owner.set(c, seg);
      seg.outstanding++;
      out.push(c);
    }
  }

  drain(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const seg of this.sealed) this.handOut(seg, seg.tail.splice(0), out);
    this.sealed.length = 0;
    const cur = this.current;
    if (cur?.name !== undefined) this.handOut(cur, cur.encoder.drain(), out);
    return out;
  }

  flush(): Uint8Array[] {
    const out = this.drain();
    const cur = this.current;
    if (cur?.name !== undefined) this.handOut(cur, cur.encoder.flush(), out);
    return out;
  }

  private partialPath(seg: Segment): string {
    return join(this.options.dir, `${seg.name}.partial`);
  }

  async write(chunk: Uint8Array): Promise<void> {
    const seg = this.owner.get(chunk);
    if (seg === undefined)
      throw new EgressError(EgressErrorCode.Misuse, "write of a chunk this output did not hand out");
    this.owner.delete(chunk);
    if (seg.stream === undefined) {
      await mkdir(this.options.dir, { recursive: true });
      try {
        seg.stream = await PositionedFileWriter.open(
          this.partialPath(seg),
          this.secret ? SECRET_FILE_MODE : PUBLIC_FILE_MODE,
          this.options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES,
        );
      } catch (err) {
        seg.failure ??= err as Error;
      }
    }
    if (seg.failure || seg.stream?.error) {
      seg.failure ??= seg.stream?.error;
      throw this.writeError(seg);
    }
    const stream = seg.stream!;
    this.bytes += chunk.length;
    const wait = stream.write(chunk, () => seg.encoder.recycle(chunk));
    if (wait) await wait;
    seg.outstanding--;
    await this.finishReady();
  }

  private writeError(seg: Segment): EgressError {
    return new EgressError(
      EgressErrorCode.OpenFailed,
      `writing ${this.partialPath(seg)}: ${seg.failure?.message}`,
      {
        cause: seg.failure,
      },
    );
  }

  /** Completes a segment's file: end, rename, report, upload. */
  private async finish(seg: Segment): Promise<void> {
    if (seg.finished || seg.stream === undefined || seg.name === undefined) return;
    seg.finished = true;
    try {
      await seg.stream.close();
    } catch (err) {
      seg.failure ??= err as Error;
    }
    if (seg.failure) throw this.writeError(seg);
    const path = join(this.options.dir, seg.name);
    await rename(this.partialPath(seg), path);
    const file: ClosedCaptureFile = {
      path,
      name: seg.name,
      packets: seg.packets,
      bytes: seg.encoder.bytesWritten,
      firstPacketNs: seg.firstNs,
    };
    this.filesClosed++;
    this.closedFiles.push(file);
    this.options.onFileClosed?.(file);
    const upload = this.options.upload;
    if (upload) {
      this.uploads = this.uploads.then(async () => {
        try {
          await upload.store.write(`${upload.prefix ?? ""}${file.name}`, createReadStream(path), {
            sensitive: this.secret,
          });
          this.uploaded++;
          if (upload.removeLocal) await rm(path, { force: true });
        } catch (err) {
          this.uploadFailures++;
          this.lastUploadError = `${file.name}: ${(err as Error).message}`;
        }
      });
    }
  }

  async close(): Promise<void> {
    if (this.done) return;
    for (const c of this.flush()) await this.write(c);
    this.done = true;
    if (this.current) this.seal(this.current);
    for (const c of this.drain()) await this.write(c);
    await this.finishReady();
    await this.uploads;
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    const open = new Set<Segment>([...this.owner.values(), ...this.unfinished]);
    if (this.current) open.add(this.current);
    this.owner.clear();
    for (const seg of open) {
      if (seg.finished || seg.stream === undefined) continue;
      seg.finished = true;
      await seg.stream.destroy();
      await rm(this.partialPath(seg), { force: true });
    }
    await this.uploads;
  }

  report(): OutputReport {
    return {
      name: this.name,
      kind: this.kind,
      format: this.format,
      dir: this.options.dir,
      filesClosed: this.filesClosed,
      packets: this.packets,
      bytes: this.bytes,
      keyBlocks: this.keyBlocks,
      keysNotCarried: this.keysNotCarried,
      ...(this.options.upload
        ? {
            upload: {
              store: this.options.upload.store.url,
              uploaded: this.uploaded,
              failures: this.uploadFailures,
              lastError: this.lastUploadError ?? null,
            },
          }
        : {}),
    };
  }
}

export function createRotatingFileOutput(options: RotatingFileOutputOptions): RotatingFileOutput {
  return new RotatingFileOutput(options);
}
