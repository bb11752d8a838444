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
 * Fixed-size slots in shared slabs, for the per-flow header templates: one small typed array per flow would
 * cost more in array and backing-store headers than its bytes. Slots are returned with `free` when the flow
 * ends and reused.
 */
export class TemplateArena {
  private readonly slabs: Uint8Array[] = [];
  private readonly free: { slab: Uint8Array; offset: number }[][] = [];
  private current: Uint8Array | undefined;
  private used = 0;

  constructor(private readonly slabBytes = 256 * 1024) {}

  alloc(size: number): { slab: Uint8Array; offset: number } {
    const reuse = this.free[size]?.pop();
    if (reuse) return reuse;
    if (!this.current || this.used + size > this.current.length) {
      this.current = new Uint8Array(Math.max(this.slabBytes, size));
      this.slabs.push(this.current);
      this.used = 0;
    }
    const slot = { slab: this.current, offset: this.used };
    this.used += size;
    return slot;
  }

  release(size: number, slot: { slab: Uint8Array; offset: number }): void {
    let list = this.free[size];
    if (!list) {
      list = [];
      this.free[size] = list;
    }
    list.push(slot);
  }
}

const defaultArena = new TemplateArena(16 * 1024);

/**
 * Ethernet + IP headers for both directions of a flow in one buffer, with every constant field filled in and
 * the constant parts of the checksums summed once. The variable fields (IPv4 total length, id, checksum;
 * IPv6 payload length) are written per packet. One small buffer per flow: an idle flow stays cheap.
 */
export class FlowTemplates {
  /** Direction 0 (client to server) at [base, base + size), direction 1 right after it, in an arena slab. */
  private readonly slab: Uint8Array;
  private readonly base: number;
  private readonly arena: TemplateArena;
  /** Ethernet plus IP header bytes of one direction. */
  readonly size: number;
  readonly ipHeader: number;
  /** IPv4: folded sum of each direction's constant header words. */
  private readonly ipv4Sum0: number;
  private readonly ipv4Sum1: number;
  /** Folded sum of the pseudo-header's addresses (the same both ways). */
  readonly addressSum: number;

  constructor(
    ep: Endpoints,
    protocol: number,
    link: LinkOptions,
    flowLabel: number,
    arena: TemplateArena = defaultArena,
  ) {
    const v4 = ep.ipVersion === 4;
    this.ipHeader = v4 ? IPV4_HEADER : IPV6_HEADER;
    this.size = ETHERNET_HEADER + this.ipHeader;
    this.arena = arena;
    const slot = arena.alloc(2 * this.size);
    this.slab = slot.slab;
    this.base = slot.offset;
    const clientMac = link.clientMac ?? clientMacFor(ep.clientAddress);
    const gatewayMac = link.gatewayMac ?? DEFAULT_GATEWAY_MAC;
    const sums = [0, 0];
    for (const d of [0, 1] as const) {
      const b = this.slab.subarray(this.base + d * this.size, this.base + (d + 1) * this.size);
      b.fill(0);
      const fromClient = d === 0;
      b.set(fromClient ? gatewayMac : clientMac, 0);
      b.set(fromClient ? clientMac : gatewayMac, 6);
      put16(b, 12, v4 ? 0x0800 : 0x86dd);
      const source = fromClient ? ep.clientAddress : ep.serverAddress;
      const destination = fromClient ? ep.serverAddress : ep.clientAddress;
      const ttl = fromClient
        ? (link.clientTtl ?? DEFAULT_CLIENT_TTL)
        : (link.serverTtl ?? DEFAULT_SERVER_TTL);
      const ip = ETHERNET_HEADER;
      if (v4) {
        b[ip] = 0x45;
        put16(b, ip + 6, 0x4000); // DF, as Linux sets it
        b[ip + 8] = ttl;
        b[ip + 9] = protocol;
        b.set(source, ip + 12);
        b.set(destination, ip + 16);
        sums[d] = sumBytes(b, ip, ip + IPV4_HEADER);
      } else {
        put32(b, ip, (0x6 << 28) | ((flowLabel ^ (d * 0x5555)) & 0xfffff));
        b[ip + 6] = protocol;
        b[ip + 7] = ttl;
        b.set(source, ip + 8);
        b.set(destination, ip + 24);
      }
    }
    this.ipv4Sum0 = sums[0]!;
    this.ipv4Sum1 = sums[1]!;
    const a = ep.clientAddress;
    const z = ep.serverAddress;
    this.addressSum = sumBytes(a, 0, a.length, sumBytes(z, 0, z.length));
  }

  /** Returns the slot to the arena; the templates must not be used afterwards. */
  release(): void {
    this.arena.release(2 * this.size, { slab: this.slab, offset: this.base });
  }

  /**
   * Copies direction `dir`'s headers into `frame` and fills the IP length fields (and IPv4 id and checksum).
   * `fragmentField` replaces the IPv4 flags/offset word (default: DF).
   */
  writeIp(
    dir: 0 | 1,
    frame: Uint8Array,
    ipPayloadLength: number,
    id: number,
    fragmentField?: number,
    base = 0,
  ): void {
    const size = this.size;
    const from = this.base + dir * size;
    // A loop, not set(subarray): 34 or 54 bytes, and no view object per packet.
    const slab = this.slab;
    for (let k = 0; k < size; k++) frame[base + k] = slab[from + k]!;
    const ip = base + ETHERNET_HEADER;
    if (this.ipHeader === IPV4_HEADER) {
      const total = IPV4_HEADER + ipPayloadLength;
      put16(frame, ip + 2, total);
      put16(frame, ip + 4, id);
      let sum = (dir === 0 ? this.ipv4Sum0 : this.ipv4Sum1) + total + id;
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
