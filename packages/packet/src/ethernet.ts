import { u16be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";
import { EtherType } from "./link-type.js";

/** One 802.1Q / 802.1ad tag. */
export interface VlanTag {
  /** The tag protocol identifier that introduced the tag (0x8100, 0x88a8, ...). */
  readonly tpid: number;
  readonly priority: number;
  readonly dropEligible: boolean;
  readonly vlanId: number;
}

export interface EthernetFrame {
  /** 6-byte view. */
  readonly destination: Uint8Array;
  /** 6-byte view. */
  readonly source: Uint8Array;
  /** Outermost tag first; empty for an untagged frame. */
  readonly vlanTags: readonly VlanTag[];
  /** The EtherType after the tags. Values up to 1500 are 802.3 length fields (LLC frames), not types. */
  readonly etherType: number;
  /** View of the bytes after the header and tags (may include trailing padding or an FCS). */
  readonly payload: Uint8Array;
}

const HEADER_BYTES = 14;
const TAG_BYTES = 4;
/** More tags than this is not a real frame; the cap keeps a crafted frame from being walked to its end. */
export const MAX_VLAN_TAGS = 8;

function isTagProtocol(type: number): boolean {
  return (
    type === EtherType.Vlan ||
    type === EtherType.QinQ ||
    type === EtherType.QinQLegacy9100 ||
    type === EtherType.QinQLegacy9200
  );
}

/** Parses an Ethernet II header with any number (up to `MAX_VLAN_TAGS`) of 802.1Q / QinQ tags. */
export function parseEthernet(data: Uint8Array): EthernetFrame {
  if (data.length < HEADER_BYTES) {
    throw new MalformedPacketError(
      "ethernet",
      PacketErrorCode.Truncated,
      `frame of ${data.length} bytes is shorter than the ${HEADER_BYTES}-byte header`,
      0,
    );
  }
  const vlanTags: VlanTag[] = [];
  let typeOffset = 12;
  let type = u16be(data, typeOffset);
  while (isTagProtocol(type)) {
    if (vlanTags.length === MAX_VLAN_TAGS) {
      throw new MalformedPacketError(
        "ethernet",
        PacketErrorCode.TooManyHeaders,
        `more than ${MAX_VLAN_TAGS} VLAN tags`,
        typeOffset,
      );
    }
    if (data.length < typeOffset + TAG_BYTES + 2) {
      throw new MalformedPacketError("ethernet", PacketErrorCode.Truncated, "VLAN tag cut short", typeOffset);
    }
    const tci = u16be(data, typeOffset + 2);
    vlanTags.push({
      tpid: type,
      priority: tci >> 13,
      dropEligible: (tci & 0x1000) !== 0,
      vlanId: tci & 0x0fff,
    });
    typeOffset += TAG_BYTES;
    type = u16be(data, typeOffset);
  }
  return {
    destination: data.subarray(0, 6),
    source: data.subarray(6, 12),
    vlanTags,
    etherType: type,
    payload: data.subarray(typeOffset + 2),
  };
}
