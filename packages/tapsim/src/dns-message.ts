/**
 * Just enough of the DNS wire format (RFC 1035, EDNS(0) from RFC 6891, the HTTPS record from RFC 9460) to make
 * real queries and answers: what a stub resolver sends and a recursive resolver returns.
 */
import { DnsType } from "./exchange-plan.js";

export const DnsRcode = { NoError: 0, ServFail: 2, NxDomain: 3 } as const;
export type DnsRcode = (typeof DnsRcode)[keyof typeof DnsRcode];

export class DnsFormatError extends Error {
  override readonly name = "DnsFormatError";
}

const CLASS_IN = 1;
const TYPE_SOA = 6;
const TYPE_OPT = 41;
const EDNS_UDP_PAYLOAD = 1232;

export interface DnsQuestion {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly recursionDesired: boolean;
  readonly edns: boolean;
}

export type DnsAnswer =
  | { readonly type: typeof DnsType.A; readonly ttl: number; readonly address: string }
  | { readonly type: typeof DnsType.AAAA; readonly ttl: number; readonly address: string }
  | { readonly type: typeof DnsType.TXT; readonly ttl: number; readonly text: string }
  | { readonly type: typeof DnsType.HTTPS; readonly ttl: number; readonly alpn: readonly string[] };

export interface DnsResponseSummary {
  readonly id: number;
  readonly rcode: number;
  readonly answerCount: number;
}

class Writer {
  private buf = new Uint8Array(512);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  u8(v: number): void {
    this.grow(1);
    this.buf[this.length++] = v & 0xff;
  }
  u16(v: number): void {
    this.u8(v >>> 8);
    this.u8(v);
  }
  u32(v: number): void {
    this.u16(v >>> 16);
    this.u16(v & 0xffff);
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  name(name: string): void {
    for (const label of name.split(".").filter((l) => l.length > 0)) {
      const b = new TextEncoder().encode(label);
      if (b.length > 63) throw new DnsFormatError(`label "${label}" exceeds 63 bytes`);
      this.u8(b.length);
      this.bytes(b);
    }
    this.u8(0);
  }
  /** Reserves a u16 length field; returns a function that fills it with the bytes written since. */
  lengthField(): () => void {
    const at = this.length;
    this.u16(0);
    return () => {
      const n = this.length - at - 2;
      this.buf[at] = n >>> 8;
      this.buf[at + 1] = n & 0xff;
    };
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function ipv4Bytes(address: string): Uint8Array {
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new DnsFormatError(`"${address}" is not an IPv4 address`);
  }
  return Uint8Array.from(parts);
}

function ipv6Bytes(address: string): Uint8Array {
  const [head, tail] = address.includes("::") ? address.split("::") : [address, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill("0"), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) {
    throw new DnsFormatError(`"${address}" is not an IPv6 address`);
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >>> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function encodeQuery(q: DnsQuestion): Uint8Array {
  const w = new Writer();
  w.u16(q.id);
  w.u16(q.recursionDesired ? 0x0100 : 0);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(q.edns ? 1 : 0);
  w.name(q.name);
  w.u16(q.type);
  w.u16(CLASS_IN);
  if (q.edns) writeOpt(w);
  return w.done();
}

function writeOpt(w: Writer): void {
  w.u8(0); // root name
  w.u16(TYPE_OPT);
  w.u16(EDNS_UDP_PAYLOAD);
  w.u32(0); // extended rcode, version 0, no DO bit
  w.u16(0);
}

class Reader {
  at = 0;
  constructor(private readonly b: Uint8Array) {}
  u8(): number {
    const v = this.b[this.at];
    if (v === undefined) throw new DnsFormatError(`message ends at byte ${this.at}`);
    this.at++;
    return v;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  /** A name without compression pointers (queries never use them). */
  name(): string {
    const labels: string[] = [];
    for (;;) {
      const n = this.u8();
      if (n === 0) break;
      if (n > 63)
        throw new DnsFormatError(`unexpected label length or pointer 0x${n.toString(16)} in a query`);
      if (this.at + n > this.b.length) throw new DnsFormatError("label runs past the message");
      labels.push(new TextDecoder().decode(this.b.subarray(this.at, this.at + n)));
      this.at += n;
    }
    return labels.join(".");
  }
}

export function decodeQuery(message: Uint8Array): DnsQuestion {
  const r = new Reader(message);
  const id = r.u16();
  const flags = r.u16();
  if (flags & 0x8000) throw new DnsFormatError("message is a response, not a query");
  const qd = r.u16();
  r.u16();
  r.u16();
  const ar = r.u16();
  if (qd !== 1) throw new DnsFormatError(`query with ${qd} questions`);
  const name = r.name();
  const type = r.u16();
  const cls = r.u16();
  if (cls !== CLASS_IN) throw new DnsFormatError(`query class ${cls} is not IN`);
  let edns = false;
  for (let i = 0; i < ar; i++) {
    if (r.u8() !== 0) throw new DnsFormatError("additional record with a non-root name in a query");
    const t = r.u16();
    r.u16();
    r.u16();
    r.u16();
    const len = r.u16();
    r.at += len;
    if (t === TYPE_OPT) edns = true;
  }
  return { id, name, type, recursionDesired: (flags & 0x0100) !== 0, edns };
}

/**
 * A resolver's answer to `q`: the question echoed, the answers (owner name compressed to the question), and
 * for NXDOMAIN or an empty answer the zone's SOA in the authority section, as recursive resolvers send it.
 */
export function encodeResponse(
  q: DnsQuestion,
  rcode: DnsRcode,
  answers: readonly DnsAnswer[],
  zone: string,
): Uint8Array {
  const w = new Writer();
  const soa = rcode === DnsRcode.NxDomain || answers.length === 0;
  w.u16(q.id);
  w.u16(0x8000 | (q.recursionDesired ? 0x0100 : 0) | 0x0080 | rcode);
  w.u16(1);
  w.u16(answers.length);
  w.u16(soa ? 1 : 0);
  w.u16(q.edns ? 1 : 0);
  w.name(q.name);
  w.u16(q.type);
  w.u16(CLASS_IN);
  for (const a of answers) {
    w.u16(0xc00c); // pointer to the question name at offset 12
    w.u16(a.type);
    w.u16(CLASS_IN);
    w.u32(a.ttl);
    const end = w.lengthField();
    switch (a.type) {
      case DnsType.A:
        w.bytes(ipv4Bytes(a.address));
        break;
      case DnsType.AAAA:
        w.bytes(ipv6Bytes(a.address));
        break;
      case DnsType.TXT: {
        const t = new TextEncoder().encode(a.text);
        w.u8(t.length);
        w.bytes(t);
        break;
      }
      case DnsType.HTTPS: {
        w.u16(1); // SvcPriority 1: service mode
        w.u8(0); // TargetName "." = the owner name
        w.u16(1); // SvcParamKey alpn
        const endParam = w.lengthField();
        for (const id of a.alpn) {
          const b = new TextEncoder().encode(id);
          w.u8(b.length);
          w.bytes(b);
        }
        endParam();
        break;
      }
    }
    end();
  }
  if (soa) {
    w.name(zone);
    w.u16(TYPE_SOA);
    w.u16(CLASS_IN);
    w.u32(900);
    const end = w.lengthField();
    w.name(`ns1.${zone}`);
    w.name(`hostmaster.${zone}`);
    w.u32(2025031401);
    w.u32(7200);
    w.u32(900);
    w.u32(1209600);
    w.u32(300);
    end();
  }
  if (q.edns) writeOpt(w);
  return w.done();
}

/** Reads the header of a response: enough for a stub to check the id and count the answers. */
export function decodeResponseSummary(message: Uint8Array): DnsResponseSummary {
  const r = new Reader(message);
  const id = r.u16();
  const flags = r.u16();
  if (!(flags & 0x8000)) throw new DnsFormatError("message is a query, not a response");
  r.u16();
  const an = r.u16();
  return { id, rcode: flags & 0x000f, answerCount: an };
}

export function rcodeName(rcode: number): string {
  return rcode === DnsRcode.NoError
    ? "NOERROR"
    : rcode === DnsRcode.NxDomain
      ? "NXDOMAIN"
      : rcode === DnsRcode.ServFail
        ? "SERVFAIL"
        : `RCODE${rcode}`;
}

export function dnsTypeName(type: number): string {
  const e = Object.entries(DnsType).find(([, v]) => v === type);
  return e ? e[0] : `TYPE${type}`;
}
