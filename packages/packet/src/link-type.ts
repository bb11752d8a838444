/** LINKTYPE_* values (https://www.tcpdump.org/linktypes.html) this package decodes. */
export const LinkType = {
  /** BSD loopback: a 4-byte address family in the capturing host's byte order. */
  Null: 0,
  Ethernet: 1,
  /** Raw IPv4 or IPv6, told apart by the version nibble. */
  Raw: 101,
  /** OpenBSD loopback: like Null but the family is always big-endian. */
  Loop: 108,
  LinuxSll: 113,
  Ipv4: 228,
  Ipv6: 229,
  LinuxSll2: 276,
} as const;
export type LinkType = (typeof LinkType)[keyof typeof LinkType];

const names: Readonly<Record<number, string>> = {
  [LinkType.Null]: "NULL",
  [LinkType.Ethernet]: "ETHERNET",
  [LinkType.Raw]: "RAW",
  [LinkType.Loop]: "LOOP",
  [LinkType.LinuxSll]: "LINUX_SLL",
  [LinkType.Ipv4]: "IPV4",
  [LinkType.Ipv6]: "IPV6",
  [LinkType.LinuxSll2]: "LINUX_SLL2",
};

/** "ETHERNET", "LINUX_SLL2", ... or "LINKTYPE_<n>" for a type this package does not know. */
export function linkTypeName(linkType: number): string {
  return names[linkType] ?? `LINKTYPE_${linkType}`;
}

export function isSupportedLinkType(linkType: number): linkType is LinkType {
  return names[linkType] !== undefined;
}

/** EtherType values the decoders act on. */
export const EtherType = {
  Ipv4: 0x0800,
  Arp: 0x0806,
  Vlan: 0x8100,
  Ipv6: 0x86dd,
  QinQ: 0x88a8,
  /** Pre-standard QinQ tag protocol identifiers still seen on some switches. */
  QinQLegacy9100: 0x9100,
  QinQLegacy9200: 0x9200,
} as const;
export type EtherType = (typeof EtherType)[keyof typeof EtherType];
