/**
 * Low-level header writing shared by the TCP and UDP synthesizers: big-endian stores into a Uint8Array
 * without a DataView, and the per-direction header templates (Ethernet + IP) with their precomputed sums.
 */
import { fold32 } from "@cloudtap/packet";

export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** One's-complement sum of `b[start, end)` (even `start`), folded. For headers: short ranges. */
export function sumBytes(b: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (i < end) s += b[i]! << 8;
  return fold32(s);
}

export const ETHERNET_HEADER = 14;
export const IPV4_HEADER = 20;
export const IPV6_HEADER = 40;
export const TCP_HEADER = 20;
export const UDP_HEADER = 8;

export interface Endpoints {
  readonly ipVersion: 4 | 6;
  /** 4 or 16 bytes each. */
  readonly clientAddress: Uint8Array;
  readonly serverAddress: Uint8Array;
  readonly clientPort: number;
  readonly serverPort: number;
}

export interface LinkOptions {
  /** MAC of the user's host; default derived from the client address (locally administered). */
  readonly clientMac?: Uint8Array;
  /** MAC of the next hop (the gateway the host talks through); default 02:00:5e:10:00:01. */
  readonly gatewayMac?: Uint8Array;
  /** TTL / hop limit of packets leaving the client, and of packets arriving from the server. */
  readonly clientTtl?: number;
  readonly serverTtl?: number;
}

export const DEFAULT_GATEWAY_MAC = Uint8Array.of(0x02, 0x00, 0x5e, 0x10, 0x00, 0x01);
export const DEFAULT_CLIENT_TTL = 64;
export const DEFAULT_SERVER_TTL = 52;

/** A stable, locally administered MAC for a client address, so each user's host has its own. */
export function clientMacFor(address: Uint8Array): Uint8Array {
  let h = 0x811c9dc5;
  for (const b of address) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return Uint8Array.of(0x02, 0x1c, (h >>> 24) & 0xff, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
}

/** FNV-1a of a string, for deterministic ISNs, IP ids and flow labels. */
export function hash32(text: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Ethernet + IP header for one direction of a flow, with every constant field filled in. The variable
 * fields (IPv4 total length, id, checksum; IPv6 payload length) are written per packet.
 */
export class DirectionTemplate {
  readonly bytes: Uint8Array;
  readonly ipHeader: number;
  /** IPv4: folded sum of the header's constant words. */
  readonly ipv4Sum: number;
  /** Folded sum of the pseudo-header's addresses (the protocol and length are added per packet). */
  readonly addressSum: number;
  readonly source: Uint8Array;
  readonly destination: Uint8Array;

  constructor(ep: Endpoints, fromClient: boolean, protocol: number, link: LinkOptions, flowLabel: number) {
    const v4 = ep.ipVersion === 4;
    this.ipHeader = v4 ? IPV4_HEADER : IPV6_HEADER;
    const b = new Uint8Array(ETHERNET_HEADER + this.ipHeader);
    const clientMac = link.clientMac ?? clientMacFor(ep.clientAddress);
    const gatewayMac = link.gatewayMac ?? DEFAULT_GATEWAY_MAC;
    b.set(fromClient ? gatewayMac : clientMac, 0);
    b.set(fromClient ? clientMac : gatewayMac, 6);
    put16(b, 12, v4 ? 0x0800 : 0x86dd);
    this.source = fromClient ? ep.clientAddress : ep.serverAddress;
    this.destination = fromClient ? ep.serverAddress : ep.clientAddress;
    const ttl = fromClient ? (link.clientTtl ?? DEFAULT_CLIENT_TTL) : (link.serverTtl ?? DEFAULT_SERVER_TTL);
    const ip = ETHERNET_HEADER;
    if (v4) {
      b[ip] = 0x45;
      b[ip + 1] = 0;
      put16(b, ip + 6, 0x4000); // DF, as Linux sets on TCP
      b[ip + 8] = ttl;
      b[ip + 9] = protocol;
      b.set(this.source, ip + 12);
      b.set(this.destination, ip + 16);
      this.ipv4Sum = sumBytes(b, ip, ip + IPV4_HEADER);
    } else {
      put32(b, ip, (0x6 << 28) | (flowLabel & 0xfffff));
      b[ip + 6] = protocol;
      b[ip + 7] = ttl;
      b.set(this.source, ip + 8);
      b.set(this.destination, ip + 24);
      this.ipv4Sum = 0;
    }
    this.bytes = b;
    this.addressSum = sumBytes(
      this.source,
      0,
      this.source.length,
      sumBytes(this.destination, 0, this.destination.length),
    );
  }

  /** Copies the template into `frame` and fills the IP length fields (and IPv4 id and checksum). */
  writeIp(frame: Uint8Array, ipPayloadLength: number, id: number, fragmentField?: number): void {
    frame.set(this.bytes, 0);
    const ip = ETHERNET_HEADER;
    if (this.ipHeader === IPV4_HEADER) {
      const total = IPV4_HEADER + ipPayloadLength;
      put16(frame, ip + 2, total);
      put16(frame, ip + 4, id);
      let sum = this.ipv4Sum + total + id;
      if (fragmentField !== undefined) {
        put16(frame, ip + 6, fragmentField);
        // Replace the template's DF word: add the new word and the one's complement of the old one.
        sum += fragmentField + (~0x4000 & 0xffff);
      }
      put16(frame, ip + 10, ~fold32(sum) & 0xffff);
    } else {
      put16(frame, ip + 4, ipPayloadLength);
    }
  }
}
