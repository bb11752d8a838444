/**
 * An output's report as per-sink numbers: packets and bytes a sink wrote or sent, and what it dropped by
 * reason. A tunnel output is one sink per target (its datagrams), plus the output itself for what its
 * policy dropped before any target; every other output is one sink. Services turn these into gauges (the
 * mesh's `egress_sink_*` series); the report stays the one source, so the status and the metrics agree.
 */
import type { OutputReport } from "./egress-output.js";

export interface SinkCounters {
  /** The output's or the tunnel target's name ("pcapng:out.pcapng", "vxlan:10.0.0.2:4789"). */
  readonly sink: string;
  /** The output's kind, or the target's tunnel kind (vxlan, geneve). */
  readonly sinkKind: string;
  /** Absent where the sink writes no packets of its own (a tunnel output's policy). */
  readonly packets?: number;
  readonly bytes?: number;
  /** Items dropped, by reason (only reasons with a count above zero). */
  readonly drops: Readonly<Record<string, number>>;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function nonZero(drops: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(drops).filter(([, n]) => n > 0));
}

/** The sinks of one output's report. */
export function sinkCountersOf(o: OutputReport): SinkCounters[] {
  switch (o.kind) {
    case "tunnel": {
      const targets = Array.isArray(o["targets"]) ? (o["targets"] as Record<string, unknown>[]) : [];
      const out: SinkCounters[] = [
        {
          sink: o.name,
          sinkKind: o.kind,
          drops: nonZero({
            policy: num(o["framesDroppedByPolicy"]),
            unroutable: num(o["framesUnroutable"]),
          }),
        },
      ];
      for (const t of targets) {
        const errors = (t["sendErrors"] ?? {}) as Record<string, unknown>;
        let sendErrors = 0;
        for (const n of Object.values(errors)) sendErrors += num(n);
        out.push({
          sink: String(t["name"]),
          sinkKind: String(t["kind"]),
          packets: num(t["datagramsSent"]),
          bytes: num(t["bytesSent"]),
          drops: nonZero({
            send_error: sendErrors,
            oversize: num(t["oversizeDropped"]),
            queue_full: num(t["queueDropped"]),
            rate_limit: num(t["rateLimitDropped"]),
          }),
        });
      }
      return out;
    }
    case "pcap-over-ip": {
      const clients = Array.isArray(o["clients"]) ? (o["clients"] as Record<string, unknown>[]) : [];
      let bytes = 0;
      for (const c of clients) bytes += num(c["bytes"]);
      return [
        {
          sink: o.name,
          sinkKind: o.kind,
          packets: num(o["packets"]),
          bytes,
          drops: nonZero({
            slow_client: num(o["droppedPackets"]),
            no_client: num(o["packetsWithoutClients"]),
          }),
        },
      ];
    }
    case "rotating": {
      const upload = (o["upload"] ?? {}) as Record<string, unknown>;
      return [
        {
          sink: o.name,
          sinkKind: o.kind,
          packets: num(o["packets"]),
          bytes: num(o["bytes"]),
          drops: nonZero({ upload_failed: num(upload["failures"]) }),
        },
      ];
    }
    default:
      return [
        { sink: o.name, sinkKind: o.kind, packets: num(o["packets"]), bytes: num(o["bytes"]), drops: {} },
      ];
  }
}
