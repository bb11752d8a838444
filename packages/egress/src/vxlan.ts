/**
 * VXLAN (RFC 7348 section 5): an 8-byte header in front of the inner Ethernet frame, carried in UDP.
 *
 *    0                   1                   2                   3
 *   |R|R|R|R|I|R|R|R|            Reserved                           |
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *
 * The I flag is set (the VNI is valid); every reserved bit is zero when sent and ignored when received.
 */
import { EgressError, EgressErrorCode } from "./errors.js";

/** IANA-assigned UDP destination port. */
export const VXLAN_PORT = 4789;
export const VXLAN_HEADER_BYTES = 8;
/** The I flag: "the VNI is valid". */
export const VXLAN_FLAG_VNI = 0x08;
export const MAX_VNI = 0xff_ffff;

export function checkVni(vni: number, what = "VNI"): void {
  if (!Number.isInteger(vni) || vni < 0 || vni > MAX_VNI) {
    throw new EgressError(EgressErrorCode.BadTarget, `${what} ${vni} is not an integer in 0..${MAX_VNI}`);
  }
}

/** Writes the 8-byte header at `at`. */
export function writeVxlanHeader(buffer: Uint8Array, at: number, vni: number): void {
  buffer[at] = VXLAN_FLAG_VNI;
  buffer[at + 1] = 0;
  buffer[at + 2] = 0;
  buffer[at + 3] = 0;
  buffer[at + 4] = (vni >>> 16) & 0xff;
  buffer[at + 5] = (vni >>> 8) & 0xff;
  buffer[at + 6] = vni & 0xff;
  buffer[at + 7] = 0;
}

/** The header as a new 8-byte array (per-flow templates copy it in front of each frame). */
export function vxlanHeader(vni: number): Uint8Array {
  checkVni(vni);
  const b = new Uint8Array(VXLAN_HEADER_BYTES);
  writeVxlanHeader(b, 0, vni);
  return b;
}

export interface VxlanHeader {
  readonly vni: number;
  /** The inner Ethernet frame: a view into the input. */
  readonly frame: Uint8Array;
}

/** Parses a VXLAN UDP payload; undefined when it is too short or the I flag is clear. */
export function parseVxlan(payload: Uint8Array): VxlanHeader | undefined {
  if (payload.length < VXLAN_HEADER_BYTES || (payload[0]! & VXLAN_FLAG_VNI) === 0) return undefined;
  return {
    vni: (payload[4]! << 16) | (payload[5]! << 8) | payload[6]!,
    frame: payload.subarray(VXLAN_HEADER_BYTES),
  };
}
