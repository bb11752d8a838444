import { u16be, u32be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";

/** Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16-byte header). */
export interface LinuxSllFrame {
  /** 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 sent by us. */
  readonly packetType: number;
  /** ARPHRD_* type of the interface. */
  readonly arphrdType: number;
  /** View of the link-layer address (at most 8 bytes). */
  readonly address: Uint8Array;
  /** The protocol type: an EtherType for most ARPHRD types. */
  readonly protocol: number;
  readonly payload: Uint8Array;
}

/** Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20-byte header). */
export interface LinuxSll2Frame extends LinuxSllFrame {
  readonly interfaceIndex: number;
}

const SLL_BYTES = 16;
const SLL2_BYTES = 20;

export function parseLinuxSll(data: Uint8Array): LinuxSllFrame {
  if (data.length < SLL_BYTES) {
    throw new MalformedPacketError(
      "linux-sll",
      PacketErrorCode.Truncated,
      `frame of ${data.length} bytes is shorter than the ${SLL_BYTES}-byte header`,
      0,
    );
  }
  const addressLength = Math.min(u16be(data, 4), 8);
  return {
    packetType: u16be(data, 0),
    arphrdType: u16be(data, 2),
    address: data.subarray(6, 6 + addressLength),
    protocol: u16be(data, 14),
    payload: data.subarray(SLL_BYTES),
  };
}

export function parseLinuxSll2(data: Uint8Array): LinuxSll2Frame {
  if (data.length < SLL2_BYTES) {
    throw new MalformedPacketError(
      "linux-sll2",
      PacketErrorCode.Truncated,
      `frame of ${data.length} bytes is shorter than the ${SLL2_BYTES}-byte header`,
      0,
    );
  }
  const addressLength = Math.min(data[11]!, 8);
  return {
    protocol: u16be(data, 0),
    interfaceIndex: u32be(data, 4),
    arphrdType: u16be(data, 8),
    packetType: data[10]!,
    address: data.subarray(12, 12 + addressLength),
    payload: data.subarray(SLL2_BYTES),
  };
}
