import { type Ipv4Packet, isIpv4Fragment, parseIpv4 } from "./ipv4.js";
import { IpProtocol, type Ipv6Packet, isIpv6Fragment, parseIpv6 } from "./ipv6.js";
import { decodeLink, type LinkLayer } from "./link.js";
import { parseTcp, type TcpSegment } from "./tcp.js";
import { parseUdp, type UdpDatagram } from "./udp.js";

export type IpPacket = Ipv4Packet | Ipv6Packet;

export type TransportLayer =
  | { readonly protocol: "tcp"; readonly segment: TcpSegment }
  | { readonly protocol: "udp"; readonly datagram: UdpDatagram };

/** A frame decoded as far as this package goes. Every byte array in it is a view into the input. */
export interface DecodedPacket {
  readonly link: LinkLayer;
  /** Undefined when the link layer does not carry IP. */
  readonly ip: IpPacket | undefined;
  /** The upper-layer protocol number after IPv6 extension headers (IPv4: the protocol field). */
  readonly ipProtocol: number | undefined;
  /**
   * True for any IP fragment, the first one included. Fragments are not reassembled here, and the
   * transport header is not decoded even in a first fragment, because its payload would be incomplete.
   */
  readonly fragment: boolean;
  /** TCP or UDP when the packet carries one and is not a fragment; undefined otherwise. */
  readonly transport: TransportLayer | undefined;
}

/**
 * Decodes link, IP and TCP/UDP headers. Throws `MalformedPacketError` for the first malformed layer
 * (including an unsupported link type); a well-formed packet of another protocol decodes with `ip` or
 * `transport` undefined.
 */
export function decodePacket(linkType: number, data: Uint8Array): DecodedPacket {
  const link = decodeLink(linkType, data);
  if (link.network === undefined) {
    return { link, ip: undefined, ipProtocol: undefined, fragment: false, transport: undefined };
  }
  let ip: IpPacket;
  let fragment: boolean;
  let ipProtocol: number;
  if (link.network === "ipv4") {
    const v4 = parseIpv4(link.payload);
    ip = v4;
    fragment = isIpv4Fragment(v4);
    ipProtocol = v4.protocol;
  } else {
    const v6 = parseIpv6(link.payload);
    ip = v6;
    fragment = isIpv6Fragment(v6);
    ipProtocol = v6.protocol;
  }
  let transport: TransportLayer | undefined;
  if (!fragment) {
    if (ipProtocol === IpProtocol.Tcp) transport = { protocol: "tcp", segment: parseTcp(ip.payload) };
    else if (ipProtocol === IpProtocol.Udp) transport = { protocol: "udp", datagram: parseUdp(ip.payload) };
  }
  return { link, ip, ipProtocol, fragment, transport };
}
