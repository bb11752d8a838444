/**
 * Two captures compared flow for flow: the same packets (bytes and timestamps) and the same TLS key-log
 * lines, whatever the order the files hold them in (the mesh interleaves shards differently from one process).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readCapture } from "@cloudtap/pcap";

export interface CaptureDigest {
  readonly packets: number;
  /** Sorted digests of "timestamp|bytes" per packet. */
  readonly packetDigests: readonly string[];
  /** Sorted key-log lines of every secrets block. */
  readonly keyLogLines: readonly string[];
}

export async function digestCapture(path: string): Promise<CaptureDigest> {
  const packetDigests: string[] = [];
  const keyLogLines: string[] = [];
  for await (const item of readCapture(readFileSync(path))) {
    if (item.type === "packet") {
      packetDigests.push(
        createHash("sha256").update(`${item.timestampNs}|`).update(item.data).digest("hex").slice(0, 32),
      );
    } else if ("text" in item && typeof item.text === "string") {
      for (const line of item.text.split("\n")) if (line.trim() !== "") keyLogLines.push(line.trim());
    }
  }
  packetDigests.sort();
  keyLogLines.sort();
  return { packets: packetDigests.length, packetDigests, keyLogLines };
}
