import { u16be, u32be } from "./bytes.js";
import { MalformedPacketError, PacketErrorCode } from "./errors.js";
import { type TcpSeq, toSeq } from "./seq.js";

/** TCP header flag bits (the 9 low bits of bytes 12-13, RFC 9293 and RFC 3168). */
export const TcpFlag = {
  Fin: 0x001,
  Syn: 0x002,
  Rst: 0x004,
  Psh: 0x008,
  Ack: 0x010,
  Urg: 0x020,
  Ece: 0x040,
  Cwr: 0x080,
  /** The former ECN-nonce bit (RFC 3540, historic), now AccECN's AE. */
  Ae: 0x100,
} as const;
export type TcpFlag = (typeof TcpFlag)[keyof typeof TcpFlag];

const flagNames: readonly [number, string][] = [
  [TcpFlag.Syn, "SYN"],
  [TcpFlag.Fin, "FIN"],
  [TcpFlag.Rst, "RST"],
  [TcpFlag.Psh, "PSH"],
  [TcpFlag.Ack, "ACK"],
  [TcpFlag.Urg, "URG"],
  [TcpFlag.Ece, "ECE"],
  [TcpFlag.Cwr, "CWR"],
  [TcpFlag.Ae, "AE"],
];

/** "SYN|ACK", "FIN|ACK", ... or "" for no flags. */
export function tcpFlagsToString(flags: number): string {
  return flagNames
    .filter(([bit]) => (flags & bit) !== 0)
    .map(([, name]) => name)
    .join("|");
}

/** TCP option kinds (IANA "TCP Option Kind Numbers"). */
export const TcpOptionKind = {
  EndOfList: 0,
  NoOperation: 1,
  Mss: 2,
  WindowScale: 3,
  SackPermitted: 4,
  Sack: 5,
  Timestamps: 8,
} as const;

export interface SackBlock {
  readonly left: TcpSeq;
  readonly right: TcpSeq;
}

/** The options of one segment that this package interprets; others are skipped. */
export interface TcpOptions {
  readonly mss: number | undefined;
  readonly windowScale: number | undefined;
  readonly sackPermitted: boolean;
  readonly sackBlocks: readonly SackBlock[];
  readonly timestamps: { readonly value: number; readonly echoReply: number } | undefined;
}

export interface TcpSegment {
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly sequenceNumber: TcpSeq;
  readonly acknowledgmentNumber: TcpSeq;
  /** Header length in bytes (20 to 60). */
  readonly headerLength: number;
  /** The `TcpFlag` bits. */
  readonly flags: number;
  readonly window: number;
  readonly checksum: number;
  readonly urgentPointer: number;
  /** View of the raw options; decode with `parseTcpOptions`. */
  readonly options: Uint8Array;
  /** View of the payload. */
  readonly payload: Uint8Array;
}

const MIN_HEADER = 20;

export function parseTcp(data: Uint8Array): TcpSegment {
  if (data.length < MIN_HEADER) {
    throw new MalformedPacketError(
      "tcp",
      PacketErrorCode.Truncated,
      `segment of ${data.length} bytes is shorter than the ${MIN_HEADER}-byte header`,
      0,
    );
  }
  const headerLength = (data[12]! >> 4) * 4;
  if (headerLength < MIN_HEADER) {
    throw new MalformedPacketError("tcp", PacketErrorCode.BadHeaderLength, `data offset ${headerLength}`, 12);
  }
  if (headerLength > data.length) {
    throw new MalformedPacketError(
      "tcp",
      PacketErrorCode.Truncated,
      `header length ${headerLength} exceeds the ${data.length} bytes present`,
      12,
    );
  }
  return {
    sourcePort: u16be(data, 0),
    destinationPort: u16be(data, 2),
    sequenceNumber: toSeq(u32be(data, 4)),
    acknowledgmentNumber: toSeq(u32be(data, 8)),
    headerLength,
    flags: u16be(data, 12) & 0x01ff,
    window: u16be(data, 14),
    checksum: u16be(data, 16),
    urgentPointer: u16be(data, 18),
    options: data.subarray(MIN_HEADER, headerLength),
    payload: data.subarray(headerLength),
  };
}

function optionError(message: string, offset: number): MalformedPacketError {
  return new MalformedPacketError("tcp-options", PacketErrorCode.BadOption, message, offset);
}

/**
 * Decodes MSS, window scale, SACK-permitted, SACK blocks and timestamps from a TCP options area. Stops at
 * End of Option List. Throws `MalformedPacketError` (layer `tcp-options`) when an option's length runs past
 * the area or does not match its kind; offsets are relative to the start of the options.
 */
export function parseTcpOptions(options: Uint8Array): TcpOptions {
  let mss: number | undefined;
  let windowScale: number | undefined;
  let sackPermitted = false;
  const sackBlocks: SackBlock[] = [];
  let timestamps: TcpOptions["timestamps"];
  let i = 0;
  while (i < options.length) {
    const kind = options[i]!;
    if (kind === TcpOptionKind.EndOfList) break;
    if (kind === TcpOptionKind.NoOperation) {
      i++;
      continue;
    }
    if (i + 1 >= options.length) throw optionError(`option ${kind} has no length byte`, i);
    const length = options[i + 1]!;
    if (length < 2 || i + length > options.length)
      throw optionError(`option ${kind} has bad length ${length}`, i);
    const expect = (want: number): void => {
      if (length !== want) throw optionError(`option ${kind} has length ${length}, want ${want}`, i);
    };
    switch (kind) {
      case TcpOptionKind.Mss:
        expect(4);
        mss = u16be(options, i + 2);
        break;
      case TcpOptionKind.WindowScale:
        expect(3);
        windowScale = options[i + 2]!;
        break;
      case TcpOptionKind.SackPermitted:
        expect(2);
        sackPermitted = true;
        break;
      case TcpOptionKind.Sack:
        if ((length - 2) % 8 !== 0) throw optionError(`SACK option has length ${length}`, i);
        for (let j = i + 2; j < i + length; j += 8) {
          sackBlocks.push({ left: toSeq(u32be(options, j)), right: toSeq(u32be(options, j + 4)) });
        }
        break;
      case TcpOptionKind.Timestamps:
        expect(10);
        timestamps = { value: u32be(options, i + 2), echoReply: u32be(options, i + 6) };
        break;
      default:
        break;
    }
    i += length;
  }
  return { mss, windowScale, sackPermitted, sackBlocks, timestamps };
}
