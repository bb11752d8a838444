import { MalformedPacketError, PacketErrorCode } from "./errors.js";
import { parseEthernet, type VlanTag } from "./ethernet.js";
import { EtherType, LinkType, linkTypeName } from "./link-type.js";
import { parseLinuxSll, parseLinuxSll2 } from "./linux-sll.js";
import { parseNullLoopback } from "./null-loopback.js";

export type NetworkProtocol = "ipv4" | "ipv6";

/** The result of peeling the link layer off a frame. */
export interface LinkLayer {
  readonly linkType: number;
  /** The network protocol the payload carries, or undefined when it is not IP (ARP, LLC, ...). */
  readonly network: NetworkProtocol | undefined;
  /** The EtherType (Ethernet, SLL, SLL2) or address family (NULL, LOOP); undefined for raw-IP link types. */
  readonly protocol: number | undefined;
  /** VLAN tags of an Ethernet frame, outermost first; empty otherwise. */
  readonly vlanTags: readonly VlanTag[];
  /** View of the network-layer bytes. */
  readonly payload: Uint8Array;
}

const noTags: readonly VlanTag[] = Object.freeze([]);

function networkOfEtherType(type: number): NetworkProtocol | undefined {
  if (type === EtherType.Ipv4) return "ipv4";
  if (type === EtherType.Ipv6) return "ipv6";
  return undefined;
}

function networkOfVersion(payload: Uint8Array): NetworkProtocol | undefined {
  if (payload.length === 0) {
    throw new MalformedPacketError("link", PacketErrorCode.Truncated, "empty raw IP packet", 0);
  }
  const version = payload[0]! >> 4;
  if (version === 4) return "ipv4";
  if (version === 6) return "ipv6";
  return undefined;
}

/**
 * Peels the link-layer header of `linkType` off `data`. Throws `MalformedPacketError` with code
 * `unsupported-link-type` for a link type not in `LinkType`, and `truncated` when the header is cut short.
 */
export function decodeLink(linkType: number, data: Uint8Array): LinkLayer {
  switch (linkType) {
    case LinkType.Ethernet: {
      const frame = parseEthernet(data);
      return {
        linkType,
        network: networkOfEtherType(frame.etherType),
        protocol: frame.etherType,
        vlanTags: frame.vlanTags,
        payload: frame.payload,
      };
    }
    case LinkType.Raw:
      return {
        linkType,
        network: networkOfVersion(data),
        protocol: undefined,
        vlanTags: noTags,
        payload: data,
      };
    case LinkType.Ipv4:
    case LinkType.Ipv6: {
      const stated: NetworkProtocol = linkType === LinkType.Ipv4 ? "ipv4" : "ipv6";
      // The link type promises the version; a packet that disagrees is not IP of that version.
      const network = networkOfVersion(data) === stated ? stated : undefined;
      return { linkType, network, protocol: undefined, vlanTags: noTags, payload: data };
    }
    case LinkType.LinuxSll:
    case LinkType.LinuxSll2: {
      const frame = linkType === LinkType.LinuxSll ? parseLinuxSll(data) : parseLinuxSll2(data);
      return {
        linkType,
        network: networkOfEtherType(frame.protocol),
        protocol: frame.protocol,
        vlanTags: noTags,
        payload: frame.payload,
      };
    }
    case LinkType.Null:
    case LinkType.Loop: {
      const frame = parseNullLoopback(data);
      return {
        linkType,
        network: frame.network,
        protocol: frame.family,
        vlanTags: noTags,
        payload: frame.payload,
      };
    }
    default:
      throw new MalformedPacketError(
        "link",
        PacketErrorCode.UnsupportedLinkType,
        `unsupported link type ${linkTypeName(linkType)}`,
        0,
      );
  }
}
