/** The capture formats the file and stream outputs write, over @cloudtap/pcap's chunked encoders. */
import {
  type CaptureEncoder,
  createPcapEncoder,
  createPcapngEncoder,
  type PcapngEncoder,
} from "@cloudtap/pcap";
import { EgressError, EgressErrorCode } from "./errors.js";

export const CaptureFormat = { Pcap: "pcap", Pcapng: "pcapng" } as const;
export type CaptureFormat = (typeof CaptureFormat)[keyof typeof CaptureFormat];

export const LINKTYPE_ETHERNET = 1;

export interface CaptureEncoderSettings {
  readonly format: CaptureFormat;
  /** pcap only; default "nanosecond" (pcapng always writes nanoseconds). */
  readonly resolution?: "microsecond" | "nanosecond";
  readonly snapLength?: number;
  readonly chunkBytes?: number;
  /** pcapng only (shb_userappl). */
  readonly userApplication?: string;
  /** Default true; false for records that go behind another encoder's file header (@cloudtap/pcap). */
  readonly fileHeader?: boolean;
}

export function createCaptureEncoder(s: CaptureEncoderSettings): CaptureEncoder | PcapngEncoder {
  const common = {
    linkType: LINKTYPE_ETHERNET,
    ...(s.snapLength === undefined ? {} : { snapLength: s.snapLength }),
    ...(s.chunkBytes === undefined ? {} : { chunkBytes: s.chunkBytes }),
    ...(s.fileHeader === undefined ? {} : { fileHeader: s.fileHeader }),
  };
  return s.format === CaptureFormat.Pcapng
    ? createPcapngEncoder({ ...common, userApplication: s.userApplication ?? "cloudtap" })
    : createPcapEncoder({ ...common, resolution: s.resolution ?? "nanosecond" });
}

export function isPcapngEncoder(e: CaptureEncoder): e is PcapngEncoder {
  return typeof (e as Partial<PcapngEncoder>).writeTlsKeyLog === "function";
}

/** Bytes one frame of `length` takes in the file: the record header, the frame and (pcapng) padding. */
export function recordBytes(format: CaptureFormat, length: number): number {
  return format === CaptureFormat.Pcapng ? 32 + ((length + 3) & ~3) : 16 + length;
}

export function checkCaptureFormat(format: string, where: string): CaptureFormat {
  if (format !== CaptureFormat.Pcap && format !== CaptureFormat.Pcapng) {
    throw new EgressError(EgressErrorCode.BadOption, `${where}: format "${format}" is not pcap or pcapng`);
  }
  return format;
}
