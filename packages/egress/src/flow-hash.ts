/**
 * A symmetric hash of a flow's 5-tuple: A->B and B->A hash the same, so both directions of a connection pick
 * the same outer UDP source port and the same balanced target (load balancers keep the pair on one path, and
 * an NDR sees one tunnel). The endpoints are put in a canonical order (address bytes, then port) before
 * mixing, as gopacket's `Flow.FastHash` does; the mix is FNV-1a over the bytes with a murmur3 finalizer.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import { parseIpAddress } from "@cloudtap/packet";

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function mixByte(h: number, b: number): number {
  return Math.imul(h ^ b, FNV_PRIME) >>> 0;
}

function mixEndpoint(h: number, address: Uint8Array, port: number): number {
  let x = h;
  for (let i = 0; i < address.length; i++) x = mixByte(x, address[i]!);
  x = mixByte(x, port >>> 8);
  return mixByte(x, port & 0xff);
}

/** murmur3's fmix32: spreads FNV's weak low bits, which pick the slot (`hash % slots`). */
function finalize(h: number): number {
  let x = h;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Negative when endpoint A sorts before endpoint B (shorter address first, then bytes, then port). */
function compareEndpoints(a: Uint8Array, aPort: number, b: Uint8Array, bPort: number): number {
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return aPort - bPort;
}

/**
 * The symmetric hash of (protocol, A, B): the same for (protocol, B, A). Ports are 0 for a 3-tuple hash
 * (IP fragments, protocols without ports).
 */
export function endpointPairHash(
  protocol: number,
  a: Uint8Array,
  aPort: number,
  b: Uint8Array,
  bPort: number,
): number {
  let h = mixByte(FNV_OFFSET, protocol & 0xff);
  if (compareEndpoints(a, aPort, b, bPort) <= 0) {
    h = mixEndpoint(mixEndpoint(h, a, aPort), b, bPort);
  } else {
    h = mixEndpoint(mixEndpoint(h, b, bPort), a, aPort);
  }
  return finalize(h);
}

/** IP protocol numbers of the transports a FrameFlowContext names. */
export const IP_PROTOCOL = { tcp: 6, udp: 17 } as const;

/**
 * The flow's symmetric 5-tuple hash. A context is the same for both directions of a flow; this hash is also
 * what `frameFlowHash` gives for any unfragmented frame of the flow, in either direction.
 */
export function flowHash(flow: FrameFlowContext): number {
  return endpointPairHash(
    IP_PROTOCOL[flow.transport],
    parseIpAddress(flow.client.address),
    flow.client.port,
    parseIpAddress(flow.server.address),
    flow.server.port,
  );
}
