/**
 * Remapping of client (and/or server) addresses into configured ranges, for NDRs that must tell tapped SASE
 * traffic apart from the corporate network it overlaps (Vectra's Cloud TAP integration requires it).
 *
 * Each distinct address gets one address of the range for the whole run, chosen by a hash of the address
 * (so a run over the same traffic tends to give the same answers) and probing forward on a collision; every
 * new assignment is reported once (`onMapping`), which is the mapping log. IPv4 ranges of 4 or more
 * addresses never hand out their network and broadcast addresses. An address whose family has no range is
 * left as it is (counted); a full range (or `maxMappings`) leaves the flow unexportable (counted).
 *
 * Frames are rewritten in place: both addresses, the IPv4 header checksum, and the TCP/UDP checksum by the
 * incremental update of RFC 1624 (the pseudo-header covers the addresses), so no byte of payload is read.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import { formatIpAddress, parseIpAddress } from "@cloudtap/packet";
import type { RemapConfig } from "./export-policy.js";

export type RemapRole = "client" | "server";

export interface AddressMapping {
  readonly role: RemapRole;
  readonly original: string;
  readonly mapped: string;
}

export class RemapStats {
  /** Distinct addresses mapped, per role. */
  clientMappings = 0;
  serverMappings = 0;
  /** Flows whose address family had no configured range for a role: that address was left as it is. */
  flowsUnmappedFamily = 0;
  /** Flows that could not be mapped because a range (or maxMappings) was full: not exported. */
  flowsExhausted = 0;
}

/** A range's addresses by index: base | index, index in [first, last] (the low 32 host bits at most). */
interface Pool {
  readonly base: Uint8Array;
  readonly first: number;
  readonly last: number;
  readonly taken: Set<number>;
}

function makePool(cidr: string): Pool {
  const slash = cidr.indexOf("/");
  const base = parseIpAddress(cidr.slice(0, slash));
  const prefix = Number(cidr.slice(slash + 1));
  const width = base.length * 8;
  // Clear the host bits of the base.
  for (let bit = prefix; bit < width; bit++) base[bit >> 3]! &= ~(0x80 >> (bit & 7));
  const hostBits = width - prefix;
  const space = 2 ** Math.min(hostBits, 32);
  const ipv4Ends = base.length === 4 && hostBits >= 2;
  return {
    base,
    first: ipv4Ends ? 1 : 0,
    last: ipv4Ends ? space - 2 : space - 1,
    taken: new Set(),
  };
}

function hashBytes(bytes: Uint8Array, salt: number): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

/** Writes `index` into the low bits of a copy of the pool's base. */
function addressAt(pool: Pool, index: number): Uint8Array {
  const out = pool.base.slice();
  let rest = index;
  for (let i = out.length - 1; i >= 0 && rest > 0; i--) {
    out[i]! |= rest & 0xff;
    rest = Math.floor(rest / 256);
  }
  return out;
}

function key(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A flow's rewrite: the addresses before and after, and the checksum adjustment they imply. */
export interface FlowRewrite {
  readonly client: Uint8Array;
  readonly server: Uint8Array;
  readonly mappedClient: Uint8Array;
  readonly mappedServer: Uint8Array;
  /** Folded one's-complement sum of (~old words + new words) over both addresses (RFC 1624). */
  readonly delta: number;
}

function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function checksumDelta(olds: readonly Uint8Array[], news: readonly Uint8Array[]): number {
  let sum = 0;
  for (const a of olds) for (let i = 0; i < a.length; i += 2) sum += ~((a[i]! << 8) | a[i + 1]!) & 0xffff;
  for (const a of news) for (let i = 0; i < a.length; i += 2) sum += (a[i]! << 8) | a[i + 1]!;
  return fold(sum);
}

/** RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with the ~m + m' part summed in `delta`. */
function adjust(checksum: number, delta: number): number {
  return ~fold((~checksum & 0xffff) + delta) & 0xffff;
}

export class AddressRemapper {
  readonly stats = new RemapStats();
  private readonly pools: Record<RemapRole, { 4?: Pool; 6?: Pool }> = { client: {}, server: {} };
  private readonly maps: Record<RemapRole, Map<string, Uint8Array>> = {
    client: new Map(),
    server: new Map(),
  };

  constructor(
    private readonly config: RemapConfig,
    private readonly onMapping?: (mapping: AddressMapping) => void,
  ) {
    for (const role of ["client", "server"] as const) {
      for (const cidr of config[role]) {
        const pool = makePool(cidr);
        this.pools[role][pool.base.length === 4 ? 4 : 6] = pool;
      }
    }
  }

  /** The address `original` maps to for `role`: itself when the role has no range of its family; undefined when full. */
  map(role: RemapRole, original: Uint8Array): Uint8Array | undefined {
    const pool = this.pools[role][original.length === 4 ? 4 : 6];
    if (!pool) return original;
    const k = key(original);
    const known = this.maps[role].get(k);
    if (known) return known;
    const usable = pool.last - pool.first + 1;
    if (pool.taken.size >= Math.min(usable, this.config.maxMappings)) return undefined;
    let index = pool.first + (hashBytes(original, role === "client" ? 1 : 2) % usable);
    while (pool.taken.has(index)) index = index === pool.last ? pool.first : index + 1;
    pool.taken.add(index);
    const mapped = addressAt(pool, index);
    this.maps[role].set(k, mapped);
    if (role === "client") this.stats.clientMappings++;
    else this.stats.serverMappings++;
    this.onMapping?.({ role, original: formatIpAddress(original), mapped: formatIpAddress(mapped) });
    return mapped;
  }

  /** The rewrite of one flow; undefined when a range is full (the flow must not be exported unmapped). */
  forFlow(flow: FrameFlowContext): FlowRewrite | undefined {
    const client = parseIpAddress(flow.client.address);
    const server = parseIpAddress(flow.server.address);
    const family = client.length === 4 ? 4 : 6;
    if (
      (this.config.client.length > 0 && !this.pools.client[family]) ||
      (this.config.server.length > 0 && !this.pools.server[family])
    ) {
      this.stats.flowsUnmappedFamily++;
    }
    const mappedClient = this.map("client", client);
    const mappedServer = this.map("server", server);
    if (!mappedClient || !mappedServer) {
      this.stats.flowsExhausted++;
      return undefined;
    }
    return {
      client,
      server,
      mappedClient,
      mappedServer,
      delta: checksumDelta([client, server], [mappedClient, mappedServer]),
    };
  }
}

function equalAt(frame: Uint8Array, at: number, address: Uint8Array): boolean {
  for (let i = 0; i < address.length; i++) if (frame[at + i] !== address[i]) return false;
  return true;
}

function adjustAt(frame: Uint8Array, at: number, delta: number, udp: boolean): void {
  if (at + 2 > frame.length) return;
  const old = (frame[at]! << 8) | frame[at + 1]!;
  // A UDP checksum of 0 means "none" (IPv4): it stays 0. A computed 0 is sent as 0xffff (RFC 768).
  if (udp && old === 0) return;
  let next = adjust(old, delta);
  if (udp && next === 0) next = 0xffff;
  frame[at] = next >>> 8;
  frame[at + 1] = next & 0xff;
}

/**
 * Rewrites an Ethernet frame of the flow in place (either direction). Returns false, leaving the frame as
 * it is, when it is not IP or its addresses are not the flow's.
 */
export function rewriteFrame(frame: Uint8Array, rw: FlowRewrite): boolean {
  let ip = 14;
  let type = (frame[12]! << 8) | frame[13]!;
  // 802.1Q / 802.1ad tags.
  for (let tags = 0; (type === 0x8100 || type === 0x88a8) && tags < 2; tags++) {
    type = (frame[ip + 2]! << 8) | frame[ip + 3]!;
    ip += 4;
  }
  const v4 = type === 0x0800;
  if (!v4 && type !== 0x86dd) return false;
  const size = v4 ? 4 : 16;
  const src = ip + (v4 ? 12 : 8);
  const dst = src + size;
  if (dst + size > frame.length) return false;
  let fromClient: boolean;
  if (equalAt(frame, src, rw.client) && equalAt(frame, dst, rw.server)) fromClient = true;
  else if (equalAt(frame, src, rw.server) && equalAt(frame, dst, rw.client)) fromClient = false;
  else return false;
  frame.set(fromClient ? rw.mappedClient : rw.mappedServer, src);
  frame.set(fromClient ? rw.mappedServer : rw.mappedClient, dst);
  let protocol: number;
  let l4: number | undefined;
  if (v4) {
    adjustAt(frame, ip + 10, rw.delta, false);
    protocol = frame[ip + 9]!;
    const fragmentOffset = ((frame[ip + 6]! << 8) | frame[ip + 7]!) & 0x1fff;
    l4 = fragmentOffset === 0 ? ip + (frame[ip]! & 0x0f) * 4 : undefined;
  } else {
    protocol = frame[ip + 6]!;
    l4 = ip + 40;
    // Hop-by-hop, routing and destination options headers; a fragment header ends the walk.
    for (let n = 0; n < 8 && l4 !== undefined && l4 + 8 <= frame.length; n++) {
      if (protocol === 0 || protocol === 43 || protocol === 60) {
        const next = frame[l4]!;
        l4 += (frame[l4 + 1]! + 1) * 8;
        protocol = next;
      } else if (protocol === 44) {
        const offset = ((frame[l4 + 2]! << 8) | frame[l4 + 3]!) & 0xfff8;
        protocol = frame[l4]!;
        l4 = offset === 0 ? l4 + 8 : undefined;
        break;
      } else break;
    }
  }
  if (l4 !== undefined) {
    if (protocol === 6) adjustAt(frame, l4 + 16, rw.delta, false);
    else if (protocol === 17) adjustAt(frame, l4 + 6, rw.delta, true);
  }
  return true;
}
