export type {
  EthernetFrameSpec,
  Ipv4PacketSpec,
  Ipv6PacketSpec,
  TcpOptionsSpec,
  TcpSegmentSpec,
  UdpDatagramSpec,
} from "./build.js";
export {
  buildEthernetFrame,
  buildIpPacket,
  buildIpv4Packet,
  buildIpv6Packet,
  buildTcpSegment,
  buildUdpDatagram,
  encodeTcpOptions,
} from "./build.js";
export {
  internetChecksum,
  onesComplementSum,
  pseudoHeaderSum,
  transportChecksum,
  updateChecksum16,
  updateChecksum32,
} from "./checksum.js";
export type { DecodedPacket, IpPacket, TransportLayer } from "./decode.js";
export { decodePacket } from "./decode.js";
export type { PacketLayer } from "./errors.js";
export { isMalformedPacketError, MalformedPacketError, PacketErrorCode } from "./errors.js";
export type { EthernetFrame, VlanTag } from "./ethernet.js";
export { MAX_VLAN_TAGS, parseEthernet } from "./ethernet.js";
export { fold32, sumRange } from "./fast-checksum.js";
export type { FlowAwareFrameSink, FrameFlowContext, FrameSink } from "./frame-sink.js";
export { isFlowAware } from "./frame-sink.js";
export { formatIpAddress, formatIpv4, formatIpv6 } from "./ip-address.js";
export { parseIpAddress, tryParseIpAddress } from "./ip-address-parse.js";
export type { Ipv4Packet } from "./ipv4.js";
export { isIpv4Fragment, parseIpv4 } from "./ipv4.js";
export type { Ipv6Fragment, Ipv6Packet } from "./ipv6.js";
export { IpProtocol, isIpv6Fragment, MAX_IPV6_EXTENSION_HEADERS, parseIpv6 } from "./ipv6.js";
export type { LinkLayer, NetworkProtocol } from "./link.js";
export { decodeLink } from "./link.js";
export { EtherType, isSupportedLinkType, LinkType, linkTypeName } from "./link-type.js";
export type { LinuxSll2Frame, LinuxSllFrame } from "./linux-sll.js";
export { parseLinuxSll, parseLinuxSll2 } from "./linux-sll.js";
export type { NullLoopbackFrame } from "./null-loopback.js";
export { LoopbackFamily, parseNullLoopback } from "./null-loopback.js";
export type { TcpSeq } from "./seq.js";
export { seqAdd, seqDiff, seqGt, seqGte, seqLt, seqLte, seqMax, toSeq } from "./seq.js";
export type { SackBlock, TcpOptions, TcpSegment } from "./tcp.js";
export { parseTcp, parseTcpOptions, TcpFlag, TcpOptionKind, tcpFlagsToString } from "./tcp.js";
export type { UdpDatagram } from "./udp.js";
export { parseUdp } from "./udp.js";
