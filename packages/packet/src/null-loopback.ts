import { u32be, u32le } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";

/**
 * Address family values found in BSD loopback headers. AF_INET is 2 everywhere; AF_INET6 differs by the
 * OS that wrote the capture.
 */
export const LoopbackFamily = {
  Inet: 2,
  Inet6Linux: 10,
  Inet6NetBsdOpenBsd: 24,
  Inet6FreeBsd: 28,
  Inet6Darwin: 30,
} as const;

export interface NullLoopbackFrame {
  /** The address family, whichever byte order it was written in. */
  readonly family: number;
  /** "ipv4", "ipv6", or undefined for another family. */
  readonly network: "ipv4" | "ipv6" | undefined;
  readonly payload: Uint8Array;
}

function networkOf(family: number): "ipv4" | "ipv6" | undefined {
  switch (family) {
    case LoopbackFamily.Inet:
      return "ipv4";
    case LoopbackFamily.Inet6Linux:
    case LoopbackFamily.Inet6NetBsdOpenBsd:
    case LoopbackFamily.Inet6FreeBsd:
    case LoopbackFamily.Inet6Darwin:
      return "ipv6";
    default:
      return undefined;
  }
}

/**
 * Parses the 4-byte header of LINKTYPE_NULL (host byte order of the capturing machine, which the file does
 * not record) and LINKTYPE_LOOP (always big-endian). Families are small numbers, so a value with any of its
 * upper 16 bits set when read little-endian was written big-endian.
 */
export function parseNullLoopback(data: Uint8Array): NullLoopbackFrame {
  if (data.length < 4) {
    throw new MalformedPacketError(
      "null",
      PacketErrorCode.Truncated,
      `frame of ${data.length} bytes is shorter than the 4-byte header`,
      0,
    );
  }
  const little = u32le(data, 0);
  const family = little > 0xffff ? u32be(data, 0) : little;
  return { family, network: networkOf(family), payload: data.subarray(4) };
}
