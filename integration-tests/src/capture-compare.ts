/**
 * Two captures compared flow for flow, whatever order the files hold them in (the mesh interleaves shards
 * differently from one process): the packets (bytes and timestamps), the UDP packets alone, and the TLS
 * key-log lines. TCP flows are compared by what they carry (tshark follows each direction of each flow):
 * the mesh merges a connection's directions by record time, since its batches arrive in any blob order,
 * where one process takes them in key order, so the packet layout (which ACK goes with which segment) may
 * differ while every byte of every flow is the same.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readCapture } from "@cloudtap/pcap";

export interface CaptureDigest {
  readonly packets: number;
  /** Sorted digests of "timestamp|bytes" per packet. */
  readonly packetDigests: readonly string[];
  /** Sorted digests of "timestamp|addresses|UDP datagram" of the UDP packets. */
  readonly udpDigests: readonly string[];
  /** Sorted key-log lines of every secrets block. */
  readonly keyLogLines: readonly string[];
}

export async function digestCapture(path: string): Promise<CaptureDigest> {
  const packetDigests: string[] = [];
  const udpDigests: string[] = [];
  const keyLogLines: string[] = [];
  for await (const item of readCapture(readFileSync(path))) {
    if (item.type === "packet") {
      const digest = createHash("sha256")
        .update(`${item.timestampNs}|`)
        .update(item.data)
        .digest("hex")
        .slice(0, 32);
      packetDigests.push(digest);
      const udp = udpView(item.data);
      if (udp)
        udpDigests.push(
          createHash("sha256")
            .update(`${item.timestampNs}|`)
            .update(udp.addresses)
            .update(udp.datagram)
            .digest("hex")
            .slice(0, 32),
        );
    } else if ("text" in item && typeof item.text === "string") {
      for (const line of item.text.split("\n")) if (line.trim() !== "") keyLogLines.push(line.trim());
    }
  }
  packetDigests.sort();
  udpDigests.sort();
  keyLogLines.sort();
  return { packets: packetDigests.length, packetDigests, udpDigests, keyLogLines };
}

/**
 * A UDP packet's addresses and datagram (header and payload), or undefined for anything else. The IP
 * header's identification and checksum are left out: they follow a stitcher's per-process counter.
 */
function udpView(frame: Uint8Array): { addresses: Uint8Array; datagram: Uint8Array } | undefined {
  const etherType = ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
  if (etherType === 0x0800 && frame[14 + 9] === 17) {
    const ihl = ((frame[14] ?? 0) & 0x0f) * 4;
    return { addresses: frame.subarray(14 + 12, 14 + 20), datagram: frame.subarray(14 + ihl) };
  }
  if (etherType === 0x86dd && frame[14 + 6] === 17)
    return { addresses: frame.subarray(14 + 8, 14 + 40), datagram: frame.subarray(14 + 40) };
  return undefined;
}
