/**
 * Builders for the headers the parsers read: enough to synthesize well-formed frames (checksums filled in)
 * for tests, captures and egress. Each returns a new buffer holding the header and the payload.
 */
import { internetChecksum, transportChecksum } from "./checksum.js";
import { IpProtocol } from "./ipv6.js";
import { EtherType } from "./link-type.js";

export interface EthernetFrameSpec {
  /** Default 02:00:00:00:00:02 (locally administered). */
  readonly destination?: Uint8Array;
  /** Default 02:00:00:00:00:01. */
  readonly source?: Uint8Array;
  /** Outermost first; each is written as an 802.1Q tag (TPID 0x8100) unless `tpid` says otherwise. */
  readonly vlanTags?: readonly {
    readonly vlanId: number;
    readonly tpid?: number;
    readonly priority?: number;
  }[];
  readonly etherType: number;
  readonly payload: Uint8Array;
}

const defaultDestination = Uint8Array.of(2, 0, 0, 0, 0, 2);
const defaultSource = Uint8Array.of(2, 0, 0, 0, 0, 1);

export function buildEthernetFrame(spec: EthernetFrameSpec): Uint8Array {
  const tags = spec.vlanTags ?? [];
  const out = new Uint8Array(14 + 4 * tags.length + spec.payload.length);
  out.set(spec.destination ?? defaultDestination, 0);
  out.set(spec.source ?? defaultSource, 6);
  let at = 12;
  const view = new DataView(out.buffer);
  for (const tag of tags) {
    view.setUint16(at, tag.tpid ?? EtherType.Vlan);
    view.setUint16(at + 2, ((tag.priority ?? 0) << 13) | (tag.vlanId & 0x0fff));
    at += 4;
  }
  view.setUint16(at, spec.etherType);
  out.set(spec.payload, at + 2);
  return out;
}

export interface Ipv4PacketSpec {
  /** 4 bytes. */
  readonly source: Uint8Array;
  /** 4 bytes. */
  readonly destination: Uint8Array;
  readonly protocol: number;
  readonly payload: Uint8Array;
  readonly ttl?: number;
  readonly identification?: number;
  readonly dontFragment?: boolean;
  readonly moreFragments?: boolean;
  /** In bytes; a multiple of 8. */
  readonly fragmentOffset?: number;
  /** Raw options, padded by the caller to a multiple of 4 bytes. */
  readonly options?: Uint8Array;
}

export function buildIpv4Packet(spec: Ipv4PacketSpec): Uint8Array {
  const options = spec.options ?? new Uint8Array(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(`IPv4 options must be a multiple of 4 bytes up to 40, got ${options.length}`);
  }
  const fragmentOffset = spec.fragmentOffset ?? 0;
  if (fragmentOffset % 8 !== 0)
    throw new RangeError(`fragment offset ${fragmentOffset} is not a multiple of 8`);
  const headerLength = 20 + options.length;
  const total = headerLength + spec.payload.length;
  if (total > 0xffff) throw new RangeError(`IPv4 packet of ${total} bytes exceeds 65535`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out[0] = 0x40 | (headerLength / 4);
  view.setUint16(2, total);
  view.setUint16(4, spec.identification ?? 0);
  view.setUint16(
    6,
    (spec.dontFragment ? 0x4000 : 0) | (spec.moreFragments ? 0x2000 : 0) | (fragmentOffset / 8),
  );
  out[8] = spec.ttl ?? 64;
  out[9] = spec.protocol;
  out.set(spec.source, 12);
  out.set(spec.destination, 16);
  out.set(options, 20);
  view.setUint16(10, internetChecksum(out.subarray(0, headerLength)));
  out.set(spec.payload, headerLength);
  return out;
}

export interface Ipv6PacketSpec {
  /** 16 bytes. */
  readonly source: Uint8Array;
  /** 16 bytes. */
  readonly destination: Uint8Array;
  /** The next header of the fixed header (the first extension header's code, or the upper layer). */
  readonly nextHeader: number;
  /** Extension headers (already encoded) followed by the upper-layer data. */
  readonly payload: Uint8Array;
  readonly hopLimit?: number;
  readonly flowLabel?: number;
  readonly trafficClass?: number;
}

export function buildIpv6Packet(spec: Ipv6PacketSpec): Uint8Array {
  if (spec.payload.length > 0xffff)
    throw new RangeError(`IPv6 payload of ${spec.payload.length} bytes needs a jumbogram`);
  const out = new Uint8Array(40 + spec.payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, ((6 << 28) | ((spec.trafficClass ?? 0) << 20) | ((spec.flowLabel ?? 0) & 0xfffff)) >>> 0);
  view.setUint16(4, spec.payload.length);
  out[6] = spec.nextHeader;
  out[7] = spec.hopLimit ?? 64;
  out.set(spec.source, 8);
  out.set(spec.destination, 24);
  out.set(spec.payload, 40);
  return out;
}

export interface TcpSegmentSpec {
  /** Source and destination addresses (4 or 16 bytes each), for the checksum's pseudo-header. */
  readonly sourceAddress: Uint8Array;
  readonly destinationAddress: Uint8Array;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly sequenceNumber: number;
  readonly acknowledgmentNumber?: number;
  /** `TcpFlag` bits. */
  readonly flags: number;
  readonly window?: number;
  /** Raw options (see `encodeTcpOptions`), padded to a multiple of 4 bytes. */
  readonly options?: Uint8Array;
  readonly payload?: Uint8Array;
}

export function buildTcpSegment(spec: TcpSegmentSpec): Uint8Array {
  const options = spec.options ?? new Uint8Array(0);
  if (options.length % 4 !== 0 || options.length > 40) {
    throw new RangeError(`TCP options must be a multiple of 4 bytes up to 40, got ${options.length}`);
  }
  const payload = spec.payload ?? new Uint8Array(0);
  const headerLength = 20 + options.length;
  const out = new Uint8Array(headerLength + payload.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, spec.sourcePort);
  view.setUint16(2, spec.destinationPort);
  view.setUint32(4, spec.sequenceNumber >>> 0);
  view.setUint32(8, (spec.acknowledgmentNumber ?? 0) >>> 0);
  view.setUint16(12, ((headerLength / 4) << 12) | (spec.flags & 0x01ff));
  view.setUint16(14, spec.window ?? 65535);
  out.set(options, 20);
  out.set(payload, headerLength);
  view.setUint16(16, transportChecksum(spec.sourceAddress, spec.destinationAddress, IpProtocol.Tcp, out));
  return out;
}

export interface TcpOptionsSpec {
  readonly mss?: number;
  readonly windowScale?: number;
  readonly sackPermitted?: boolean;
  readonly timestamps?: { readonly value: number; readonly echoReply: number };
}

/** Encodes options in the order Linux sends them on a SYN, NOP-padded to a multiple of 4 bytes. */
export function encodeTcpOptions(spec: TcpOptionsSpec): Uint8Array {
  const bytes: number[] = [];
  if (spec.mss !== undefined) bytes.push(2, 4, spec.mss >> 8, spec.mss & 0xff);
  if (spec.sackPermitted) bytes.push(4, 2);
  if (spec.timestamps !== undefined) {
    const { value, echoReply } = spec.timestamps;
    bytes.push(8, 10, value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
    bytes.push(echoReply >>> 24, (echoReply >>> 16) & 0xff, (echoReply >>> 8) & 0xff, echoReply & 0xff);
  }
  if (spec.windowScale !== undefined) bytes.push(1, 3, 3, spec.windowScale);
  while (bytes.length % 4 !== 0) bytes.push(1);
  return Uint8Array.from(bytes);
}

export interface UdpDatagramSpec {
  readonly sourceAddress: Uint8Array;
  readonly destinationAddress: Uint8Array;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly payload: Uint8Array;
}

export function buildUdpDatagram(spec: UdpDatagramSpec): Uint8Array {
  const length = 8 + spec.payload.length;
  if (length > 0xffff) throw new RangeError(`UDP datagram of ${length} bytes exceeds 65535`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint16(0, spec.sourcePort);
  view.setUint16(2, spec.destinationPort);
  view.setUint16(4, length);
  out.set(spec.payload, 8);
  const sum = transportChecksum(spec.sourceAddress, spec.destinationAddress, IpProtocol.Udp, out);
  view.setUint16(6, sum === 0 ? 0xffff : sum);
  return out;
}

/** Wraps a transport segment in IPv4 or IPv6, chosen by the address length. */
export function buildIpPacket(
  source: Uint8Array,
  destination: Uint8Array,
  protocol: number,
  payload: Uint8Array,
): Uint8Array {
  return source.length === 4
    ? buildIpv4Packet({ source, destination, protocol, payload })
    : buildIpv6Packet({ source, destination, nextHeader: protocol, payload });
}
