/**
 * Where synthesized frames go, without a copy or an object per frame: the builder asks for a buffer of the
 * frame's length, writes the frame into it, and commits it with its timestamp. File writers hand out space
 * in their output chunk (after the record header); tunnel senders hand out space after the outer headers.
 */
export interface FrameSink {
  /** A buffer of exactly `length` bytes for the next frame; valid until `commit` (or the next `begin`). */
  begin(length: number): Uint8Array;
  /**
   * Records the frame written into the last `begin` buffer, stamped `timestampNs + offsetNs` (the offset
   * lets a builder spread a chunk's packets over time without a BigInt per packet). `originalLength`
   * (default: the buffer's length) is the frame's length on the wire when the sink was given a shortened frame.
   */
  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void;
  /**
   * Optional fast path: like `begin`, but returns the frame's offset in `buffer` instead of a view (no object
   * per frame). `buffer` is only valid until `commit`.
   */
  beginAt?(length: number): number;
  readonly buffer?: Uint8Array;
  /**
   * Optional fast path for a whole frame already in memory (a replayed batch): the same as `begin(n)`,
   * copying `bytes` in and `commit(timestampNs, 0, originalLength)`, without the sink staging it first.
   * `bytes` is only valid during the call.
   */
  writeFrame?(bytes: Uint8Array, timestampNs: bigint, originalLength?: number): void;
}

/** What a sink may want to know of the flow a frame belongs to (export policy, tunnel metadata). */
export interface FrameFlowContext {
  /** 32 hex digits: the tapped connection. */
  readonly connId: string;
  /** "original" (as tapped) or "cleartext" (the decrypted variant). */
  readonly variant: "original" | "cleartext";
  /**
   * The flow was never encrypted (not TLS, or UDP): its bytes as tapped are its clear text too. A sink that
   * keeps separate original and cleartext feeds gives such a flow to both (see docs/stitching.md).
   */
  readonly plain?: boolean;
  readonly transport: "tcp" | "udp";
  readonly ipVersion: 4 | 6;
  readonly client: { readonly address: string; readonly port: number };
  /** The server as the frames show it (a cleartext flow's port is the mapped one). */
  readonly server: { readonly address: string; readonly port: number };
  /** Identity attributes of the connection (user, tenant, app, policy, device, ...). */
  readonly attributes: Readonly<Record<string, string>>;
}

/**
 * A sink that routes or labels frames per flow (tunnels with per-flow targets, VNIs and metadata). The
 * stitcher asks it for the sink of each flow it starts, and tells it when the flow is done.
 */
export interface FlowAwareFrameSink extends FrameSink {
  forFlow(flow: FrameFlowContext): FrameSink & { end?(): void };
}

export function isFlowAware(sink: FrameSink): sink is FlowAwareFrameSink {
  return typeof (sink as Partial<FlowAwareFrameSink>).forFlow === "function";
}
