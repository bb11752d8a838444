/**
 * A capture file written with positioned writes issued the moment a chunk is handed over (node adapter).
 *
 * Why not a `fs.WriteStream`: a stream starts its next write only from the completion callback of the
 * previous one, and that callback runs only when the event loop turns. The stitcher is CPU-bound and yields
 * to the loop rarely (awaiting an already-resolved promise does not turn it), so a stream's writes ran
 * mostly while the stitcher waited for `drain`: on a 295 MB run, 0.3 s of 1.2 s were spent waiting. Here
 * each chunk goes to the thread pool at once at its own offset (`pwrite`), so writing overlaps synthesis
 * whether or not the loop turns; completion order does not matter, since every chunk has its place.
 *
 * Bounded: at most `maxInFlightBytes` are queued (default 16 MiB); `write` returns a promise to await when
 * over the bound (backpressure), otherwise undefined. The first failed write is kept and thrown by the next
 * `write` or by `close`. `close` waits for every write, then closes the descriptor.
 */
import {
  close as closeFd,
  constants,
  fsync as fsyncFd,
  ftruncate as ftruncateFd,
  open as openFd,
  write as writeFd,
} from "node:fs";

/**
 * Create a new file, never reuse or follow what is there: an existing path (a leftover, or a symbolic link
 * planted to aim the write elsewhere) is an EEXIST error, and the mode given is the file's, not an old one's.
 */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** Mode of outputs without secrets: what the umask leaves of 0666. Files with keys are created 0600. */
export const PUBLIC_FILE_MODE = 0o666;
export const SECRET_FILE_MODE = 0o600;

export const DEFAULT_MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;

export class PositionedFileWriter {
  private position = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private failure: Error | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly maxInFlightBytes: number,
  ) {}

  /**
   * Creates `path`, which must not exist (O_CREAT|O_EXCL|O_NOFOLLOW), with `mode` (less the umask).
   */
  static open(
    path: string,
    mode: number,
    maxInFlightBytes = DEFAULT_MAX_IN_FLIGHT_BYTES,
  ): Promise<PositionedFileWriter> {
    return new Promise((resolve, reject) => {
      openFd(path, CREATE_NEW, mode, (err, fd) => {
        if (err) reject(err);
        else resolve(new PositionedFileWriter(path, fd, Math.max(1, maxInFlightBytes)));
      });
    });
  }

  /**
   * Opens an existing `path` (never following a symbolic link) to write on from byte `at`: what the file
   * holds after it is cut off. A resumed output (a continuous run started again from its state).
   */
  static resume(
    path: string,
    at: number,
    maxInFlightBytes = DEFAULT_MAX_IN_FLIGHT_BYTES,
  ): Promise<PositionedFileWriter> {
    return new Promise((resolve, reject) => {
      openFd(path, constants.O_WRONLY | (constants.O_NOFOLLOW ?? 0), (err, fd) => {
        if (err) return reject(err);
        ftruncateFd(fd, at, (truncErr) => {
          if (truncErr) return closeFd(fd, () => reject(truncErr));
          const w = new PositionedFileWriter(path, fd, Math.max(1, maxInFlightBytes));
          w.position = at;
          resolve(w);
        });
      });
    });
  }

  /**
   * Writes to a descriptor the caller opened itself (a device, a file it created by other rules); the
   * writer owns it from then on and closes it.
   */
  static fromDescriptor(
    path: string,
    fd: number,
    maxInFlightBytes = DEFAULT_MAX_IN_FLIGHT_BYTES,
  ): PositionedFileWriter {
    return new PositionedFileWriter(path, fd, Math.max(1, maxInFlightBytes));
  }

  /** Bytes handed to `write` so far (the file's size once every write completed). */
  get bytesWritten(): number {
    return this.position;
  }

  /** The first write error, if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /**
   * Queues `chunk` at the end of the file; `done` runs once the chunk's bytes are in the file (or failed), when
   * the caller may reuse its buffer. Returns a promise only when the caller should wait (too much in flight).
   */
  write(chunk: Uint8Array, done?: () => void): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error(`${this.path}: write after close`);
    const at = this.position;
    this.position += chunk.length;
    this.inFlight++;
    this.inFlightBytes += chunk.length;
    this.writeAt(chunk, 0, at, done);
    return this.inFlightBytes > this.maxInFlightBytes ? this.settled(this.maxInFlightBytes) : undefined;
  }

  private writeAt(chunk: Uint8Array, from: number, at: number, done: (() => void) | undefined): void {
    writeFd(this.fd, chunk, from, chunk.length - from, at, (err, n) => {
      if (!err && from + n < chunk.length && n > 0) {
        this.writeAt(chunk, from + n, at + n, done); // a short write: the rest at its own offset
        return;
      }
      if (err) this.failure ??= err;
      else if (n === 0) this.failure ??= new Error(`${this.path}: write made no progress`);
      this.inFlight--;
      this.inFlightBytes -= chunk.length;
      done?.();
      this.wake();
    });
  }

  /** Resolves once at most `bytes` are in flight. */
  private settled(bytes: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.inFlightBytes <= bytes || this.inFlight === 0) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  private wake(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits for every write, then fsync: the bytes that are in the file for good (throws a write error). */
  async sync(): Promise<number> {
    await this.settled(0);
    if (this.failure) throw this.failure;
    const at = this.position;
    await new Promise<void>((resolve, reject) => fsyncFd(this.fd, (err) => (err ? reject(err) : resolve())));
    return at;
  }

  /** Waits for every write, closes the file, and throws the first write error if there was one. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settled(0);
    await new Promise<void>((resolve, reject) => closeFd(this.fd, (err) => (err ? reject(err) : resolve())));
    if (this.failure) throw this.failure;
  }

  /** Stops without waiting for the result (the caller removes the file). Idempotent. */
  async destroy(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settled(0);
    await new Promise<void>((resolve) => closeFd(this.fd, () => resolve()));
  }
}
