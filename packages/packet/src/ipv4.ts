import { u16be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";

export interface Ipv4Packet {
  readonly version: 4;
  /** Header length in bytes (20 to 60). */
  readonly headerLength: number;
  readonly dscp: number;
  readonly ecn: number;
  /** The total length field as sent; 0 when the sender left it to segmentation offload (see `payload`). */
  readonly totalLength: number;
  readonly identification: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** Fragment offset in bytes. */
  readonly fragmentOffset: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly headerChecksum: number;
  /** 4-byte view. */
  readonly source: Uint8Array;
  /** 4-byte view. */
  readonly destination: Uint8Array;
  /** View of the options (empty when the header is 20 bytes). */
  readonly options: Uint8Array;
  /**
   * View of the payload, cut to `totalLength` so link-layer padding is dropped. When `totalLength` is 0
   * (captured on the sending host before TCP segmentation offload filled it in) the payload runs to the
   * end of the captured bytes.
   */
  readonly payload: Uint8Array;
  /** True when fewer bytes were captured than `totalLength` says: `payload` is then a prefix. */
  readonly truncated: boolean;
}

const MIN_HEADER = 20;

/** True for any fragment, first or not. */
export function isIpv4Fragment(packet: Ipv4Packet): boolean {
  return packet.moreFragments || packet.fragmentOffset !== 0;
}

export function parseIpv4(data: Uint8Array): Ipv4Packet {
  if (data.length < MIN_HEADER) {
    throw new MalformedPacketError(
      "ipv4",
      PacketErrorCode.Truncated,
      `packet of ${data.length} bytes is shorter than the ${MIN_HEADER}-byte header`,
      0,
    );
  }
  const version = data[0]! >> 4;
  if (version !== 4) {
    throw new MalformedPacketError("ipv4", PacketErrorCode.BadVersion, `version ${version}, want 4`, 0);
  }
  const headerLength = (data[0]! & 0x0f) * 4;
  if (headerLength < MIN_HEADER) {
    throw new MalformedPacketError(
      "ipv4",
      PacketErrorCode.BadHeaderLength,
      `header length ${headerLength}`,
      0,
    );
  }
  if (headerLength > data.length) {
    throw new MalformedPacketError(
      "ipv4",
      PacketErrorCode.Truncated,
      `header length ${headerLength} exceeds the ${data.length} captured bytes`,
      0,
    );
  }
  const totalLength = u16be(data, 2);
  if (totalLength !== 0 && totalLength < headerLength) {
    throw new MalformedPacketError(
      "ipv4",
      PacketErrorCode.BadLength,
      `total length ${totalLength} is shorter than the ${headerLength}-byte header`,
      2,
    );
  }
  const flagsAndOffset = u16be(data, 6);
  const end = totalLength === 0 ? data.length : Math.min(totalLength, data.length);
  return {
    version: 4,
    headerLength,
    dscp: data[1]! >> 2,
    ecn: data[1]! & 0x03,
    totalLength,
    identification: u16be(data, 4),
    dontFragment: (flagsAndOffset & 0x4000) !== 0,
    moreFragments: (flagsAndOffset & 0x2000) !== 0,
    fragmentOffset: (flagsAndOffset & 0x1fff) * 8,
    ttl: data[8]!,
    protocol: data[9]!,
    headerChecksum: u16be(data, 10),
    source: data.subarray(12, 16),
    destination: data.subarray(16, 20),
    options: data.subarray(MIN_HEADER, headerLength),
    payload: data.subarray(headerLength, end),
    truncated: totalLength > data.length,
  };
}
