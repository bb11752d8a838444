/**
 * Several outputs at once behind one frame sink: `createEgress([pcapngFile, tunnel, pcapOverIp, rotating])`.
 *
 * A frame is built once, in the first output's buffer (at an offset, `beginAt`, when the output offers it),
 * and copied into each further output at commit (the
 * first output is committed last, so an output that rewrites its frame in place, such as address
 * remapping in a tunnel, never changes what the others get). Per flow, each output's own flow sink is used
 * when it has one. Chunks are handed out by `drain`/`flush` from every output and routed back to the output
 * that made them by `write`, so the whole set plugs into @cloudtap/stitch's `runStitchJob` as both its
 * `output` and its `sink`.
 */
import type { FlowAwareFrameSink, FrameFlowContext, FrameSink } from "@cloudtap/packet";
import type { EgressOutput, OutputReport } from "./egress-output.js";
import { EgressError, EgressErrorCode } from "./errors.js";

type FlowSink = FrameSink & { end?(): void };

const EMPTY = new Uint8Array(0);

/** One frame to several sinks: built in the first sink's buffer, copied into the others at commit. */
class FanoutFrameSink implements FrameSink {
  private frameBuffer: Uint8Array = EMPTY;
  private frameAt = 0;
  private frameLength = 0;

  constructor(private readonly sinks: readonly FlowSink[]) {}

  get buffer(): Uint8Array {
    return this.frameBuffer;
  }

  beginAt(length: number): number {
    const first = this.sinks[0]!;
    this.frameLength = length;
    if (first.beginAt !== undefined) {
      this.frameAt = first.beginAt(length);
      this.frameBuffer = first.buffer!;
    } else {
      this.frameBuffer = first.begin(length);
      this.frameAt = 0;
    }
    return this.frameAt;
  }

  begin(length: number): Uint8Array {
    const at = this.beginAt(length);
    return at === 0 && this.frameBuffer.length === length
      ? this.frameBuffer
      : this.frameBuffer.subarray(at, at + length);
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    const sinks = this.sinks;
    if (sinks.length > 1) {
      const length = this.frameLength;
      const frame = this.frameBuffer.subarray(this.frameAt, this.frameAt + length);
      for (let i = 1; i < sinks.length; i++) {
        const s = sinks[i]!;
        if (s.beginAt !== undefined) {
          const at = s.beginAt(length);
          s.buffer!.set(frame, at);
        } else s.begin(length).set(frame);
        s.commit(timestampNs, offsetNs, originalLength);
      }
    }
    sinks[0]!.commit(timestampNs, offsetNs, originalLength);
  }

  end(): void {
    for (const s of this.sinks) s.end?.();
  }
}

export interface EgressReport {
  readonly outputs: readonly OutputReport[];
}

export interface Egress extends FlowAwareFrameSink {
  readonly outputs: readonly EgressOutput[];
  /** Whether any output embeds TLS keys (then give the stitcher `embedKeys: (t) => egress.embedKeys(t)`). */
  readonly embedsKeys: boolean;
  embedKeys(keyLogText: string): void;
  drain(): Uint8Array[];
  flush(): Uint8Array[];
  write(chunk: Uint8Array): void | Promise<void>;
  /** Closes every output; rejects with the first failure after all were tried. */
  close(): Promise<void>;
  abort(): Promise<void>;
  report(): EgressReport;
}

class EgressFanout implements Egress {
  readonly embedsKeys: boolean;
  private readonly owner = new Map<Uint8Array, EgressOutput>();
  /** Frames without a flow context. */
  private readonly all: FanoutFrameSink;
  private readonly single: EgressOutput | undefined;

  constructor(readonly outputs: readonly EgressOutput[]) {
    if (outputs.length === 0)
      throw new EgressError(EgressErrorCode.BadOption, "an egress needs at least one output");
    this.embedsKeys = outputs.some((o) => o.embedsKeys === true);
    this.single = outputs.length === 1 ? outputs[0] : undefined;
    this.all = new FanoutFrameSink(outputs);
  }

  get buffer(): Uint8Array {
    return this.all.buffer;
  }

  beginAt(length: number): number {
    return this.all.beginAt(length);
  }

  begin(length: number): Uint8Array {
    return this.all.begin(length);
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.all.commit(timestampNs, offsetNs, originalLength);
  }

  forFlow(flow: FrameFlowContext): FlowSink {
    if (this.single) return this.single.forFlow?.(flow) ?? this.single;
    return new FanoutFrameSink(this.outputs.map((o) => o.forFlow?.(flow) ?? o));
  }

  embedKeys(keyLogText: string): void {
    for (const o of this.outputs) o.embedKeys?.(keyLogText);
  }

  private collect(take: (o: EgressOutput) => Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const o of this.outputs) {
      for (const chunk of take(o)) {
        this.owner.set(chunk, o);
        out.push(chunk);
      }
    }
    return out;
  }

  drain(): Uint8Array[] {
    return this.collect((o) => o.drain());
  }

  flush(): Uint8Array[] {
    return this.collect((o) => o.flush());
  }

  write(chunk: Uint8Array): void | Promise<void> {
    const o = this.owner.get(chunk);
    if (o === undefined)
      throw new EgressError(EgressErrorCode.Misuse, "write of a chunk the egress did not hand out");
    this.owner.delete(chunk);
    return o.write(chunk);
  }

  async close(): Promise<void> {
    this.owner.clear();
    const results = await Promise.allSettled(this.outputs.map((o) => o.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  async abort(): Promise<void> {
    this.owner.clear();
    await Promise.allSettled(this.outputs.map((o) => o.abort()));
  }

  report(): EgressReport {
    return { outputs: this.outputs.map((o) => o.report()) };
  }
}

export function createEgress(outputs: readonly EgressOutput[]): Egress {
  return new EgressFanout(outputs);
}
