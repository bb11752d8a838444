import { createHash } from "node:crypto";
import type { Endpoint } from "@cloudtap/tap-format";

/**
 * A connection id that is the same every time the same capture is ingested: the first 16 bytes of
 * SHA-256 over the capture name, the transport, both endpoints (client first) and the index of the
 * connection's first packet in the capture (which tells apart connections that reuse a 5-tuple).
 */
export function deriveConnId(
  captureName: string,
  transport: number,
  client: Endpoint,
  server: Endpoint,
  firstPacketIndex: number,
): string {
  return createHash("sha256")
    .update(
      [
        captureName,
        transport,
        client.address,
        client.port,
        server.address,
        server.port,
        firstPacketIndex,
      ].join("\n"),
    )
    .digest("hex")
    .slice(0, 32);
}
