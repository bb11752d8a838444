import { u16be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";

export interface UdpDatagram {
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** The length field (header included); 0 for an IPv6 jumbogram (RFC 2675). */
  readonly length: number;
  readonly checksum: number;
  /** View of the payload, cut to `length` (to the end of the data when `length` is 0). */
  readonly payload: Uint8Array;
  /** True when fewer bytes were captured than `length` says. */
  readonly truncated: boolean;
}

const HEADER = 8;

export function parseUdp(data: Uint8Array): UdpDatagram {
  if (data.length < HEADER) {
    throw new MalformedPacketError(
      "udp",
      PacketErrorCode.Truncated,
      `datagram of ${data.length} bytes is shorter than the ${HEADER}-byte header`,
      0,
    );
  }
  const length = u16be(data, 4);
  if (length !== 0 && length < HEADER) {
    throw new MalformedPacketError("udp", PacketErrorCode.BadLength, `length ${length} is below 8`, 4);
  }
  const end = length === 0 ? data.length : Math.min(length, data.length);
  return {
    sourcePort: u16be(data, 0),
    destinationPort: u16be(data, 2),
    length,
    checksum: u16be(data, 6),
    payload: data.subarray(HEADER, end),
    truncated: length > data.length,
  };
}
