/**
 * The contract every sink of this package implements, so that any set of them can run at once behind one
 * fan-out (`createEgress`).
 *
 * Frames come in synchronously (`begin`/`commit`, optionally per flow through `forFlow`): building a packet
 * never waits. What the frames became (capture-file chunks, batches of tunnel datagrams) is collected and
 * handed out by `drain()` / `flush()`, and written out asynchronously by `write(chunk)`, which is where a
 * sink may apply backpressure (a file's write buffer, a paced tunnel). This is the shape `runStitchJob` of
 * @cloudtap/stitch drives: `output.drain()` after each slice of input, `await sink.write(chunk)` for each
 * chunk, `output.flush()` at the end.
 *
 * Lifecycle: frames and writes, then `flush()` and a `write` of every chunk it returned, then `close()`
 * (files complete and renamed, queued datagrams sent, sockets closed). `abort()` instead gives up: partial
 * files are removed, nothing more is sent. Both are idempotent.
 */
import type { FrameFlowContext, FrameSink } from "@cloudtap/packet";

/** Counters of one output: every frame in is accounted for as written/sent or as dropped for a reason. */
export type OutputReport = {
  readonly name: string;
  readonly kind: string;
} & Readonly<Record<string, unknown>>;

export interface EgressOutput extends FrameSink {
  /** How the output is named in reports: "pcapng:out.pcapng", "vxlan:10.0.0.2:4789", ... */
  readonly name: string;
  readonly kind: string;
  /** A sink for one flow's frames, when the output routes or labels by flow; ended when the flow completes. */
  forFlow?(flow: FrameFlowContext): FrameSink & { end?(): void };
  /** TLS key-log text for the flow whose packets come next (pcapng outputs write a Decryption Secrets Block). */
  embedKeys?(keyLogText: string): void;
  /** Whether this output embeds keys (a file that does is created mode 0600). */
  readonly embedsKeys?: boolean;
  /** Chunks ready to write (each handed out once). */
  drain(): Uint8Array[];
  /** Everything produced so far, partial chunks included. */
  flush(): Uint8Array[];
  /** Writes a chunk this output handed out, in the order handed out. */
  write(chunk: Uint8Array): void | Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
  report(): OutputReport;
}
