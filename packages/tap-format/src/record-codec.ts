/**
 * Encoding and decoding of record bodies (the bytes after a frame header). Decoding validates every field
 * and throws MalformedRecordError; payloads are returned as views into the body.
 */
import { formatIpAddress, tryParseIpAddress } from "@cloudtap/packet";
import { connIdToHex, writeConnId } from "./conn-id.js";
import { MalformedRecordError } from "./errors.js";
import {
  BlobEndLayout,
  ConnCloseLayout,
  ConnOpenFlag,
  ConnOpenLayout,
  DatagramLayout,
  DataLayout,
  WINDOW_SCALE_UNKNOWN,
} from "./layout.js";
import {
  type BlobEndRecord,
  CloseInitiator,
  CloseReason,
  type ConnCloseRecord,
  type ConnOpenRecord,
  type DatagramRecord,
  type DataRecord,
  type Direction,
  type TcpOptionsSeen,
  Transport,
} from "./records.js";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Decoding many records from one input chunk: one DataView per underlying buffer, not one per record.
let cachedBuffer: ArrayBufferLike | undefined;
let cachedView: DataView | undefined;
function bufferView(bytes: Uint8Array): DataView {
  if (bytes.buffer !== cachedBuffer) {
    cachedBuffer = bytes.buffer;
    cachedView = new DataView(bytes.buffer);
  }
  return cachedView!;
}

function safeNumber(v: bigint, field: string, at: number): number {
  if (v > MAX_SAFE) throw new MalformedRecordError(`${field} ${v} exceeds 2^53-1`, at);
  return Number(v);
}

function direction(b: number, at: number): Direction {
  if (b !== 0 && b !== 1) throw new MalformedRecordError(`direction ${b} is neither 0 nor 1`, at);
  return b;
}

// ---------------------------------------------------------------------------------------------- encoding

/** Size of the fixed part (everything but the payload) of a record as this writer encodes it. */
export function connOpenBodySize(r: ConnOpenRecord): number {
  let n = ConnOpenLayout.fixedBytes + 2;
  for (const [k, v] of Object.entries(r.attributes)) {
    n += 1 + utf8Encoder.encode(k).length + 2 + utf8Encoder.encode(v).length;
  }
  return n;
}

function endpointBytes(address: string, version: 4 | 6): Uint8Array {
  const b = tryParseIpAddress(address);
  if (!b || (version === 4 ? b.length !== 4 : b.length !== 16)) {
    throw new RangeError(`"${address}" is not an IPv${version} address`);
  }
  return b;
}

/** An endpoint address of a conn-open body as text: IPv4 is the first 4 of its 16 bytes on the wire. */
function addressText(body: Uint8Array, version: 4 | 6, offset: number): string {
  return formatIpAddress(body.subarray(offset, offset + (version === 4 ? 4 : 16)));
}

function checkPort(p: number): number {
  if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new RangeError(`port ${p} out of range`);
  return p;
}

export function encodeConnOpen(r: ConnOpenRecord, out: Uint8Array): number {
  const dv = view(out);
  const L = ConnOpenLayout;
  writeConnId(r.connId, out, L.connId);
  dv.setBigUint64(L.timestampNs, r.timestampNs, true);
  out[L.transport] = r.transport;
  out[L.ipVersion] = r.ipVersion;
  const t: TcpOptionsSeen = r.tcp;
  let flags = 0;
  if (r.midstream) flags |= ConnOpenFlag.Midstream;
  if (t.sackPermitted) flags |= ConnOpenFlag.SackPermitted;
  if (t.timestamps) flags |= ConnOpenFlag.Timestamps;
  if (t.clientIsn !== undefined) flags |= ConnOpenFlag.ClientIsnKnown;
  if (t.serverIsn !== undefined) flags |= ConnOpenFlag.ServerIsnKnown;
  dv.setUint16(L.flags, flags, true);
  out.fill(0, L.clientAddress, L.serverAddress + 16);
  out.set(endpointBytes(r.client.address, r.ipVersion), L.clientAddress);
  out.set(endpointBytes(r.server.address, r.ipVersion), L.serverAddress);
  dv.setUint16(L.clientPort, checkPort(r.client.port), true);
  dv.setUint16(L.serverPort, checkPort(r.server.port), true);
  dv.setUint16(L.clientMss, t.clientMss ?? 0, true);
  dv.setUint16(L.serverMss, t.serverMss ?? 0, true);
  out[L.clientWindowScale] = t.clientWindowScale ?? WINDOW_SCALE_UNKNOWN;
  out[L.serverWindowScale] = t.serverWindowScale ?? WINDOW_SCALE_UNKNOWN;
  dv.setUint16(L.attributesOffset, L.fixedBytes, true);
  dv.setUint32(L.clientIsn, (t.clientIsn ?? 0) >>> 0, true);
  dv.setUint32(L.serverIsn, (t.serverIsn ?? 0) >>> 0, true);
  const entries = Object.entries(r.attributes);
  if (entries.length > 0xffff) throw new RangeError("too many attributes");
  let p = L.fixedBytes;
  dv.setUint16(p, entries.length, true);
  p += 2;
  for (const [k, v] of entries) {
    const kb = utf8Encoder.encode(k);
    const vb = utf8Encoder.encode(v);
    if (kb.length === 0 || kb.length > 0xff)
      throw new RangeError(`attribute key "${k}" must be 1..255 bytes`);
    if (vb.length > 0xffff) throw new RangeError(`attribute "${k}" value exceeds 65535 bytes`);
    out[p++] = kb.length;
    out.set(kb, p);
    p += kb.length;
    dv.setUint16(p, vb.length, true);
    p += 2;
    out.set(vb, p);
    p += vb.length;
  }
  return p;
}

function checkOffset(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} ${n} must be a non-negative safe integer`);
}

/** Encodes the fixed part of a data record (the payload follows it in the frame body). */
export function encodeDataHead(r: DataRecord, out: Uint8Array): number {
  const dv = view(out);
  const L = DataLayout;
  checkOffset(r.offset, "offset");
  writeConnId(r.connId, out, L.connId);
  dv.setBigUint64(L.timestampNs, r.timestampNs, true);
  dv.setBigUint64(L.offset, BigInt(r.offset), true);
  dv.setUint32(L.spanNs, Math.min(Math.max(0, Math.trunc(r.spanNs)), 0xffffffff), true);
  out[L.direction] = r.direction;
  out[L.flags] = 0;
  dv.setUint16(L.payloadOffset, L.fixedBytes, true);
  return L.fixedBytes;
}

export function encodeDatagramHead(r: DatagramRecord, out: Uint8Array): number {
  const dv = view(out);
  const L = DatagramLayout;
  checkOffset(r.index, "datagram index");
  writeConnId(r.connId, out, L.connId);
  dv.setBigUint64(L.timestampNs, r.timestampNs, true);
  dv.setBigUint64(L.index, BigInt(r.index), true);
  dv.setUint32(L.reserved, 0, true);
  out[L.direction] = r.direction;
  out[L.flags] = 0;
  dv.setUint16(L.payloadOffset, L.fixedBytes, true);
  return L.fixedBytes;
}

export function encodeConnClose(r: ConnCloseRecord, out: Uint8Array): number {
  const dv = view(out);
  const L = ConnCloseLayout;
  checkOffset(r.bytesClientToServer, "bytesClientToServer");
  checkOffset(r.bytesServerToClient, "bytesServerToClient");
  writeConnId(r.connId, out, L.connId);
  dv.setBigUint64(L.timestampNs, r.timestampNs, true);
  out[L.reason] = r.reason;
  out[L.initiator] = r.initiator;
  out.fill(0, L.reserved, L.bytesClientToServer);
  dv.setBigUint64(L.bytesClientToServer, BigInt(r.bytesClientToServer), true);
  dv.setBigUint64(L.bytesServerToClient, BigInt(r.bytesServerToClient), true);
  return L.fixedBytes;
}

export function encodeBlobEnd(
  endNs: bigint,
  frameCount: number,
  payloadBytes: number,
  out: Uint8Array,
): number {
  const dv = view(out);
  dv.setBigUint64(BlobEndLayout.endNs, endNs, true);
  dv.setBigUint64(BlobEndLayout.frameCount, BigInt(frameCount), true);
  dv.setBigUint64(BlobEndLayout.payloadBytes, BigInt(payloadBytes), true);
  return BlobEndLayout.fixedBytes;
}

// ---------------------------------------------------------------------------------------------- decoding

function need(body: Uint8Array, n: number, what: string, at: number): void {
  if (body.length < n) throw new MalformedRecordError(`${what} body of ${body.length} bytes, need ${n}`, at);
}

const closeReasons = new Set<number>(Object.values(CloseReason));
const closeInitiators = new Set<number>(Object.values(CloseInitiator));

/** `at` is the stream offset of the body, used in error messages. */
export function decodeConnOpen(body: Uint8Array, at: number): ConnOpenRecord {
  const L = ConnOpenLayout;
  need(body, L.fixedBytes + 2, "conn-open", at);
  const dv = view(body);
  const transport = body[L.transport]!;
  if (transport !== Transport.Tcp && transport !== Transport.Udp) {
    throw new MalformedRecordError(`conn-open transport ${transport} is neither 6 (TCP) nor 17 (UDP)`, at);
  }
  const ipVersion = body[L.ipVersion]!;
  if (ipVersion !== 4 && ipVersion !== 6) {
    throw new MalformedRecordError(`conn-open IP version ${ipVersion} is neither 4 nor 6`, at);
  }
  const flags = dv.getUint16(L.flags, true);
  const attrsAt = dv.getUint16(L.attributesOffset, true);
  if (attrsAt < L.fixedBytes || attrsAt + 2 > body.length) {
    throw new MalformedRecordError(`conn-open attribute offset ${attrsAt} out of range`, at);
  }
  const clientWs = body[L.clientWindowScale]!;
  const serverWs = body[L.serverWindowScale]!;
  const clientMss = dv.getUint16(L.clientMss, true);
  const serverMss = dv.getUint16(L.serverMss, true);
  const tcp: {
    -readonly [K in keyof TcpOptionsSeen]: TcpOptionsSeen[K];
  } = {};
  if (clientMss) tcp.clientMss = clientMss;
  if (serverMss) tcp.serverMss = serverMss;
  if (clientWs !== WINDOW_SCALE_UNKNOWN) tcp.clientWindowScale = clientWs;
  if (serverWs !== WINDOW_SCALE_UNKNOWN) tcp.serverWindowScale = serverWs;
  if (flags & ConnOpenFlag.SackPermitted) tcp.sackPermitted = true;
  if (flags & ConnOpenFlag.Timestamps) tcp.timestamps = true;
  if (flags & ConnOpenFlag.ClientIsnKnown) tcp.clientIsn = dv.getUint32(L.clientIsn, true);
  if (flags & ConnOpenFlag.ServerIsnKnown) tcp.serverIsn = dv.getUint32(L.serverIsn, true);

  const attributes: Record<string, string> = {};
  let p = attrsAt;
  const count = dv.getUint16(p, true);
  p += 2;
  try {
    for (let i = 0; i < count; i++) {
      need(body, p + 1, "conn-open attribute", at);
      const kl = body[p]!;
      need(body, p + 1 + kl + 2, "conn-open attribute", at);
      const key = utf8Decoder.decode(body.subarray(p + 1, p + 1 + kl));
      p += 1 + kl;
      const vl = dv.getUint16(p, true);
      p += 2;
      need(body, p + vl, "conn-open attribute", at);
      attributes[key] = utf8Decoder.decode(body.subarray(p, p + vl));
      p += vl;
    }
  } catch (err) {
    if (err instanceof MalformedRecordError) throw err;
    throw new MalformedRecordError("conn-open attribute is not valid UTF-8", at);
  }
  const v = ipVersion as 4 | 6;
  return {
    type: "conn-open",
    connId: connIdToHex(body, L.connId),
    timestampNs: dv.getBigUint64(L.timestampNs, true),
    transport,
    ipVersion: v,
    client: { address: addressText(body, v, L.clientAddress), port: dv.getUint16(L.clientPort, true) },
    server: { address: addressText(body, v, L.serverAddress), port: dv.getUint16(L.serverPort, true) },
    midstream: (flags & ConnOpenFlag.Midstream) !== 0,
    tcp,
    attributes,
  };
}

export function decodeData(body: Uint8Array, at: number): DataRecord {
  const L = DataLayout;
  need(body, L.fixedBytes, "data", at);
  const dv = bufferView(body);
  const o = body.byteOffset;
  const payloadAt = dv.getUint16(o + L.payloadOffset, true);
  if (payloadAt < L.fixedBytes || payloadAt > body.length) {
    throw new MalformedRecordError(`data payload offset ${payloadAt} out of range`, at);
  }
  const payload = body.subarray(payloadAt);
  const hi = dv.getUint32(o + L.offset + 4, true);
  if (hi > 0x1fffff) throw new MalformedRecordError("data offset exceeds 2^53-1", at);
  const offset = hi * 0x1_0000_0000 + dv.getUint32(o + L.offset, true);
  if (offset + payload.length > Number.MAX_SAFE_INTEGER)
    throw new MalformedRecordError("data end offset overflows", at);
  return {
    type: "data",
    connId: connIdToHex(body, L.connId),
    direction: direction(body[L.direction]!, at),
    offset,
    timestampNs: dv.getBigUint64(o + L.timestampNs, true),
    spanNs: dv.getUint32(o + L.spanNs, true),
    payload,
  };
}

export function decodeDatagram(body: Uint8Array, at: number): DatagramRecord {
  const L = DatagramLayout;
  need(body, L.fixedBytes, "datagram", at);
  const dv = view(body);
  const payloadAt = dv.getUint16(L.payloadOffset, true);
  if (payloadAt < L.fixedBytes || payloadAt > body.length) {
    throw new MalformedRecordError(`datagram payload offset ${payloadAt} out of range`, at);
  }
  return {
    type: "datagram",
    connId: connIdToHex(body, L.connId),
    direction: direction(body[L.direction]!, at),
    index: safeNumber(dv.getBigUint64(L.index, true), "datagram index", at),
    timestampNs: dv.getBigUint64(L.timestampNs, true),
    payload: body.subarray(payloadAt),
  };
}

export function decodeConnClose(body: Uint8Array, at: number): ConnCloseRecord {
  const L = ConnCloseLayout;
  need(body, L.fixedBytes, "conn-close", at);
  const dv = view(body);
  const reason = body[L.reason]!;
  const initiator = body[L.initiator]!;
  if (!closeReasons.has(reason)) throw new MalformedRecordError(`conn-close reason ${reason} unknown`, at);
  if (!closeInitiators.has(initiator))
    throw new MalformedRecordError(`conn-close initiator ${initiator} unknown`, at);
  return {
    type: "conn-close",
    connId: connIdToHex(body, L.connId),
    timestampNs: dv.getBigUint64(L.timestampNs, true),
    reason: reason as CloseReason,
    initiator: initiator as CloseInitiator,
    bytesClientToServer: safeNumber(dv.getBigUint64(L.bytesClientToServer, true), "bytes c2s", at),
    bytesServerToClient: safeNumber(dv.getBigUint64(L.bytesServerToClient, true), "bytes s2c", at),
  };
}

export function decodeBlobEnd(body: Uint8Array, at: number): BlobEndRecord {
  need(body, BlobEndLayout.fixedBytes, "blob-end", at);
  const dv = view(body);
  return {
    type: "blob-end",
    endNs: dv.getBigUint64(BlobEndLayout.endNs, true),
    frameCount: safeNumber(dv.getBigUint64(BlobEndLayout.frameCount, true), "frame count", at),
    payloadBytes: safeNumber(dv.getBigUint64(BlobEndLayout.payloadBytes, true), "payload bytes", at),
  };
}
