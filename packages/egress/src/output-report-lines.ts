/** An output's report as summary lines for a person (the CLI's run summary, `cloudtap status`). */
import type { OutputReport } from "./egress-output.js";

/** Summary lines of one output's report. */
export function describeOutputReport(o: OutputReport): string[] {
  const n = (k: string) => Number(o[k] ?? 0);
  switch (o["kind"]) {
    case "tunnel": {
      const lines = (o["targets"] as Record<string, unknown>[]).map((t) => {
        const errors = Object.entries(t["sendErrors"] as Record<string, number>);
        const vni = t["vni"] as { original: number; cleartext: number };
        return (
          `egress:     ${t["name"]} (vni ${vni.original}/${vni.cleartext}): ${t["datagramsSent"]} of ${t["frames"]} frames sent` +
          `${errors.length ? `, refused ${errors.map(([c, k]) => `${c} ${k}`).join(", ")}` : ""}` +
          `, truncated ${t["truncated"]}, dropped ${Number(t["oversizeDropped"]) + Number(t["queueDropped"]) + Number(t["rateLimitDropped"])}`
        );
      });
      const remap = o["remap"] as Record<string, number> | undefined;
      if (remap) {
        lines.push(
          `remap:      ${remap["clientMappings"]} client and ${remap["serverMappings"]} server addresses mapped; ${remap["flowsExhausted"]} flows not exported (range full)`,
        );
      }
      if (n("flowsDroppedByPolicy"))
        lines.push(`policy:     ${n("flowsDroppedByPolicy")} flows not exported by rule`);
      if (n("flowsRefusedByPolicy"))
        lines.push(
          `policy:     ${n("flowsRefusedByPolicy")} flows refused (an attribute holds a control character): not exported`,
        );
      return lines;
    }
    case "rotating":
      return [
        `egress:     ${n("filesClosed")} ${o["format"]} files in ${o["dir"]}, ${n("packets")} packets` +
          `${o["upload"] ? `, uploaded ${(o["upload"] as Record<string, unknown>)["uploaded"]} (failed ${(o["upload"] as Record<string, unknown>)["failures"]})` : ""}`,
      ];
    case "pcap-over-ip":
      return [
        `egress:     ${o["name"]}: ${n("packets")} packets, ${n("clientsAccepted")} clients, ` +
          `${n("droppedPackets")} packets dropped for slow clients, ${n("packetsWithoutClients")} with no client` +
          `${n("blockedWrites") ? `, waited ${n("blockedMs")} ms for readers` : ""}` +
          `${n("clientsDroppedBlocked") ? `, ${n("clientsDroppedBlocked")} clients dropped after the block timeout` : ""}`,
      ];
    default:
      return [`egress:     ${o["name"]}: ${n("packets")} packets`];
  }
}
