import { u16be, u32be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";

/** IP protocol / IPv6 next-header numbers the decoders act on. */
export const IpProtocol = {
  HopByHop: 0,
  Icmp: 1,
  Tcp: 6,
  Udp: 17,
  Routing: 43,
  Fragment: 44,
  Esp: 50,
  Ah: 51,
  Icmpv6: 58,
  NoNextHeader: 59,
  DestinationOptions: 60,
  Mobility: 135,
  Hip: 139,
  Shim6: 140,
} as const;
export type IpProtocol = (typeof IpProtocol)[keyof typeof IpProtocol];

export interface Ipv6Fragment {
  /** Fragment offset in bytes. */
  readonly offset: number;
  readonly moreFragments: boolean;
  readonly identification: number;
}

export interface Ipv6Packet {
  readonly version: 6;
  readonly trafficClass: number;
  readonly flowLabel: number;
  /** The payload length field; 0 for a jumbogram or when segmentation offload left it unset. */
  readonly payloadLength: number;
  /** The next-header field of the fixed header. */
  readonly nextHeader: number;
  readonly hopLimit: number;
  /** 16-byte view. */
  readonly source: Uint8Array;
  /** 16-byte view. */
  readonly destination: Uint8Array;
  /** The extension headers walked, in order (their next-header codes: 0, 43, 44, 60, ...). */
  readonly extensionHeaders: readonly number[];
  /**
   * The protocol of `payload`: the upper layer (6, 17, 58, ...) after the extension headers, or 44 for a
   * non-first fragment (whose upper-layer header is in another packet), or 50 (ESP, opaque) or 59.
   */
  readonly protocol: number;
  /** Present when a Fragment header was seen. */
  readonly fragment: Ipv6Fragment | undefined;
  /** View of the bytes after the extension headers, cut to `payloadLength` (see `Ipv4Packet.payload`). */
  readonly payload: Uint8Array;
  /** True when fewer bytes were captured than `payloadLength` says. */
  readonly truncated: boolean;
}

const FIXED_HEADER = 40;
/** The cap on extension headers walked; RFC 8200 expects each at most once (Destination Options twice). */
export const MAX_IPV6_EXTENSION_HEADERS = 16;

export function isIpv6Fragment(packet: Ipv6Packet): boolean {
  return packet.fragment !== undefined && (packet.fragment.moreFragments || packet.fragment.offset !== 0);
}

function extensionLengthByte(packet: Uint8Array, offset: number, protocol: number): number {
  if (packet.length < offset + 2) {
    throw new MalformedPacketError(
      "ipv6",
      PacketErrorCode.Truncated,
      `extension header ${protocol} cut short before its length field`,
      offset,
    );
  }
  return packet[offset + 1]!;
}

export function parseIpv6(data: Uint8Array): Ipv6Packet {
  if (data.length < FIXED_HEADER) {
    throw new MalformedPacketError(
      "ipv6",
      PacketErrorCode.Truncated,
      `packet of ${data.length} bytes is shorter than the ${FIXED_HEADER}-byte header`,
      0,
    );
  }
  const version = data[0]! >> 4;
  if (version !== 6) {
    throw new MalformedPacketError("ipv6", PacketErrorCode.BadVersion, `version ${version}, want 6`, 0);
  }
  const first = u32be(data, 0);
  const payloadLength = u16be(data, 4);
  const nextHeader = data[6]!;
  const end = payloadLength === 0 ? data.length : Math.min(FIXED_HEADER + payloadLength, data.length);
  const packet = data.subarray(0, end);

  const extensionHeaders: number[] = [];
  let fragment: Ipv6Fragment | undefined;
  let protocol = nextHeader;
  let offset = FIXED_HEADER;
  walk: while (true) {
    let length: number;
    switch (protocol) {
      case IpProtocol.HopByHop:
      case IpProtocol.Routing:
      case IpProtocol.DestinationOptions:
      case IpProtocol.Mobility:
      case IpProtocol.Hip:
      case IpProtocol.Shim6:
        length = (extensionLengthByte(packet, offset, protocol) + 1) * 8;
        break;
      case IpProtocol.Ah:
        length = (extensionLengthByte(packet, offset, protocol) + 2) * 4;
        break;
      case IpProtocol.Fragment:
        length = 8;
        break;
      default:
        break walk;
    }
    if (extensionHeaders.length === MAX_IPV6_EXTENSION_HEADERS) {
      throw new MalformedPacketError(
        "ipv6",
        PacketErrorCode.TooManyHeaders,
        `more than ${MAX_IPV6_EXTENSION_HEADERS} extension headers`,
        offset,
      );
    }
    if (packet.length < offset + length) {
      throw new MalformedPacketError(
        "ipv6",
        PacketErrorCode.Truncated,
        `extension header ${protocol} of ${length} bytes cut short`,
        offset,
      );
    }
    extensionHeaders.push(protocol);
    const next = packet[offset]!;
    if (protocol === IpProtocol.Fragment) {
      const offsetAndFlags = u16be(packet, offset + 2);
      fragment = {
        offset: offsetAndFlags & 0xfff8,
        moreFragments: (offsetAndFlags & 1) !== 0,
        identification: u32be(packet, offset + 4),
      };
      offset += length;
      // A non-first fragment starts in the middle of the upper-layer data: stop walking there.
      if (fragment.offset !== 0) break;
    } else {
      offset += length;
    }
    protocol = next;
  }
  if (fragment !== undefined && fragment.offset !== 0) protocol = IpProtocol.Fragment;

  return {
    version: 6,
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0x000f_ffff,
    payloadLength,
    nextHeader,
    hopLimit: data[7]!,
    source: data.subarray(8, 24),
    destination: data.subarray(24, 40),
    extensionHeaders,
    protocol,
    fragment,
    payload: packet.subarray(offset),
    truncated: FIXED_HEADER + payloadLength > data.length,
  };
}
