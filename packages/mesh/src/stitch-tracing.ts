/**
 * The stitch stage's spans, kept apart from its ack logic. Per chunk message a consumer span, the child of
 * the fetcher's publish span whose context the message's headers carry (so a blob's trace continues in the
 * stitcher); the key lookups of that message run inside it. Per mirror batch a producer span that links to
 * every message consumed since the previous shipment (one batch carries the frames of many blobs), and whose
 * context goes to mirror-egress with the batch. Per flow, for a sampled share of flows (chosen by a hash of
 * the connection id, so every stitcher picks the same ones), a flow span from its first record to its
 * completion and, for TLS, a decrypt span from its ClientHello to the verdict; an outcome that loses content
 * (no keys, integrity failure, ...) is a span error. Attributes are counts, names and ids, never key material.
 */
import type { StitchedFlow } from "@cloudtap/stitch";
import {
  Attr,
  type Context,
  contextOf,
  extractHeaders,
  type HeaderCarrier,
  type Link,
  linkTo,
  markError,
  type Span,
  SpanKind,
  SpanName,
  startSpan,
  traceContextRecord,
} from "@cloudtap/telemetry";
import { TlsOutcomeKind } from "@cloudtap/tls";

/** At most this many links on one batch span (OpenTelemetry's default limit). */
export const MAX_BATCH_LINKS = 128;

const LOSSY_OUTCOMES: ReadonlySet<string> = new Set([
  TlsOutcomeKind.IntegrityFailure,
  TlsOutcomeKind.NoKeys,
  TlsOutcomeKind.BufferOverflow,
  TlsOutcomeKind.Malformed,
  TlsOutcomeKind.InternalError,
]);

/** FNV-1a of the connection id in [0, 1): the same flows are sampled in every process. */
function flowSample(conn: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < conn.length; i++) h = Math.imul(h ^ conn.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 0x1_0000_0000;
}

export class ShardTracer {
  private pendingLinks: Link[] = [];
  private linksDropped = 0;
  private readonly flows = new Map<string, { span: Span; decrypt?: Span }>();

  constructor(
    private readonly shard: number,
    private readonly run: string,
    /** Share of flows with spans, 0..1. */
    private readonly flowRatio: number,
  ) {}

  /** The consumer span of one chunk message (ended by the caller). */
  consume(headers: HeaderCarrier | undefined, blob: string | undefined, seq: number): Span {
    const span = startSpan(SpanName.BatchConsume, {
      parent: extractHeaders(headers),
      kind: SpanKind.CONSUMER,
      attributes: {
        [Attr.Run]: this.run,
        [Attr.Shard]: this.shard,
        [Attr.MessageSeq]: seq,
        ...(blob ? { [Attr.BlobKey]: blob } : {}),
      },
    });
    if (this.pendingLinks.length < MAX_BATCH_LINKS) this.pendingLinks.push(linkTo(span));
    else this.linksDropped++;
    return span;
  }

  /** A record of connection `conn` was accepted while `parent` was active. */
  flowRecord(conn: string, parent: Context): void {
    if (this.flowRatio <= 0 || this.flows.has(conn) || flowSample(conn) >= this.flowRatio) return;
    const span = startSpan(SpanName.FlowStitch, {
      parent,
      attributes: { [Attr.FlowId]: conn, [Attr.Shard]: this.shard },
    });
    this.flows.set(conn, { span });
  }

  /** The ClientHello of a sampled flow was seen: its decrypt span starts. */
  clientHello(conn: string): void {
    const f = this.flows.get(conn);
    if (!f || f.decrypt) return;
    f.decrypt = startSpan(SpanName.FlowDecrypt, {
      parent: contextOf(f.span),
      attributes: { [Attr.FlowId]: conn },
    });
  }

  flowComplete(flow: StitchedFlow): void {
    const conn = flow.flow.connId;
    const f = this.flows.get(conn);
    if (!f) return;
    this.flows.delete(conn);
    const gaps = flow.completion.directions[0].gaps + flow.completion.directions[1].gaps;
    f.span.setAttributes({
      [Attr.FlowProtocol]: flow.flow.transport,
      [Attr.FlowPackets]: flow.packets,
      [Attr.FlowCompletion]: flow.completion.reason,
      [Attr.FlowGaps]: gaps,
    });
    const tls = flow.tls;
    if (tls) {
      const decrypt = f.decrypt ?? startSpan(SpanName.FlowDecrypt, { parent: contextOf(f.span) });
      decrypt.setAttributes({
        [Attr.FlowId]: conn,
        [Attr.TlsOutcome]: tls.outcome,
        ...(tls.version ? { [Attr.TlsVersion]: tls.version } : {}),
        ...(tls.suite ? { [Attr.TlsSuite]: tls.suite } : {}),
        ...(tls.serverName ? { [Attr.TlsServerName]: tls.serverName } : {}),
      });
      if (LOSSY_OUTCOMES.has(tls.outcome)) markError(decrypt, tls.outcome, tls.detail ?? tls.outcome);
      decrypt.end();
      f.span.setAttribute(Attr.TlsOutcome, tls.outcome);
    }
    f.span.end();
  }

  /** The links for the batches of one shipment: the messages consumed since the last one. */
  takeLinks(): { links: readonly Link[]; dropped: number } {
    const taken = { links: this.pendingLinks, dropped: this.linksDropped };
    this.pendingLinks = [];
    this.linksDropped = 0;
    return taken;
  }

  /**
   * The producer span of one mirror batch: linked to the messages consumed since the last batch, a child of
   * the active span (a message's consumer span, or the end of the window). Returns the span and the trace
   * context to send with the batch.
   */
  batch(
    seq: bigint,
    frames: number,
    bytes: number,
    { links, dropped }: { links: readonly Link[]; dropped: number },
  ): { span: Span; trace: Record<string, string> } {
    const span = startSpan(SpanName.MirrorSend, {
      kind: SpanKind.PRODUCER,
      links,
      attributes: {
        [Attr.Shard]: this.shard,
        [Attr.MirrorSeq]: Number(seq),
        [Attr.MirrorFrames]: frames,
        [Attr.MirrorBytes]: bytes,
        ...(dropped > 0 ? { [Attr.MirrorLinksDropped]: dropped } : {}),
      },
    });
    return { span, trace: traceContextRecord(contextOf(span)) };
  }

  /** The span of an end-of-window flush (its batches are its children). */
  endOfWindow(): Span {
    return startSpan(SpanName.EndOfWindow, {
      attributes: { [Attr.Shard]: this.shard, [Attr.Run]: this.run },
    });
  }

  /** Flow spans still open at the end (flows cut by a shutdown). */
  endAll(): void {
    for (const f of this.flows.values()) {
      f.decrypt?.end();
      f.span.end();
    }
    this.flows.clear();
  }
}
