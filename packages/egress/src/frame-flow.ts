/**
 * A flow context read from a frame itself, for frames that arrive without one (a producer that is not
 * flow-aware). Both directions of a connection give the same context: "client" is the endpoint that sorts
 * first. IP fragments carry no ports here (a 3-tuple, as AWS Traffic Mirroring hashes them), so all
 * fragments of a datagram share a context.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import { decodePacket, formatIpAddress, isMalformedPacketError } from "@cloudtap/packet";

const LINKTYPE_ETHERNET = 1;
const NO_ATTRIBUTES: Readonly<Record<string, string>> = Object.freeze({});

function before(a: Uint8Array, aPort: number, b: Uint8Array, bPort: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return aPort <= bPort;
}

/** The frame's TCP or UDP flow; undefined for anything else (ARP, ICMP, a malformed frame). */
export function frameFlowContext(frame: Uint8Array): FrameFlowContext | undefined {
  let packet: ReturnType<typeof decodePacket>;
  try {
    packet = decodePacket(LINKTYPE_ETHERNET, frame);
  } catch (err) {
    if (isMalformedPacketError(err)) return undefined;
    throw err;
  }
  const ip = packet.ip;
  if (!ip || (packet.ipProtocol !== 6 && packet.ipProtocol !== 17)) return undefined;
  const t = packet.transport;
  const sport = t ? (t.protocol === "tcp" ? t.segment.sourcePort : t.datagram.sourcePort) : 0;
  const dport = t ? (t.protocol === "tcp" ? t.segment.destinationPort : t.datagram.destinationPort) : 0;
  const forward = before(ip.source, sport, ip.destination, dport);
  const [a, ap, b, bp] = forward
    ? [ip.source, sport, ip.destination, dport]
    : [ip.destination, dport, ip.source, sport];
  return {
    connId: "",
    variant: "original",
    transport: packet.ipProtocol === 6 ? "tcp" : "udp",
    ipVersion: ip.version,
    client: { address: formatIpAddress(a), port: ap },
    server: { address: formatIpAddress(b), port: bp },
    attributes: NO_ATTRIBUTES,
  };
}
