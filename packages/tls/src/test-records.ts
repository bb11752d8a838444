/**
 * Test-only record builders: the sending side of TLS record protection, written straight from the RFCs with
 * node:crypto createCipheriv and createHmac, independent of the decoder's code. Not part of the API.
 */
import { createCipheriv, createHmac } from "node:crypto";
import type { CipherSuite } from "./cipher-suites.js";

function header(type: number, version: number, length: number): Buffer {
  return Buffer.from([type, version >> 8, version & 0xff, length >> 8, length & 0xff]);
}

function seq8(seq: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

function xorSeq(iv: Uint8Array, seq: number): Buffer {
  const nonce = Buffer.from(iv);
  const s = seq8(seq);
  for (let i = 0; i < 8; i++) nonce[4 + i] = nonce[4 + i]! ^ s[i]!;
  return nonce;
}

function aeadSeal(
  suite: CipherSuite,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
) {
  const tagLength = suite.cipher.tagLength;
  const c = createCipheriv(suite.cipher.nodeName as "aes-128-gcm", key, nonce, { authTagLength: tagLength });
  if (suite.cipher.nodeName.endsWith("-ccm")) c.setAAD(aad, { plaintextLength: plaintext.length });
  else c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([body, c.getAuthTag()]);
}

/** A TLS 1.3 record (RFC 8446 section 5.2): TLSInnerPlaintext = content + type + zero padding. */
export function sealTls13(
  suite: CipherSuite,
  keys: { key: Uint8Array; iv: Uint8Array },
  seq: number,
  innerType: number,
  content: Uint8Array,
  padding = 0,
): Buffer {
  const inner = Buffer.concat([content, Buffer.from([innerType]), Buffer.alloc(padding)]);
  const length = inner.length + suite.cipher.tagLength;
  const hdr = header(23, 0x0303, length);
  return Buffer.concat([hdr, aeadSeal(suite, keys.key, xorSeq(keys.iv, seq), hdr, inner)]);
}

/** A TLS 1.2 AEAD record: GCM/CCM with an 8-byte explicit nonce (here seq), ChaCha20 with the XORed IV. */
export function sealTls12Aead(
  suite: CipherSuite,
  keys: { key: Uint8Array; iv: Uint8Array },
  seq: number,
  type: number,
  content: Uint8Array,
  version = 0x0303,
): Buffer {
  const aad = Buffer.concat([seq8(seq), Buffer.from([type, version >> 8, version & 0xff]), Buffer.alloc(2)]);
  aad.writeUInt16BE(content.length, 11);
  let explicit: Buffer = Buffer.alloc(0);
  let nonce: Buffer;
  if (suite.cipher.explicitNonceLength > 0) {
    explicit = seq8(seq ^ 0x5a5a);
    nonce = Buffer.concat([keys.iv, explicit]);
  } else {
    nonce = xorSeq(keys.iv, seq);
  }
  const sealed = Buffer.concat([explicit, aeadSeal(suite, keys.key, nonce, aad, content)]);
  return Buffer.concat([header(type, version, sealed.length), sealed]);
}

export interface CbcSealState {
  /** TLS 1.0: the IV of the next record (updated by each call). */
  chainIv?: Uint8Array;
}

/**
 * A TLS 1.0-1.2 CBC record, MAC-then-encrypt (RFC 5246 6.2.3.2) or encrypt-then-MAC (RFC 7366). TLS 1.1+
 * records carry `explicitIv`; TLS 1.0 records use and update `state.chainIv`.
 */
export function sealTls12Cbc(
  suite: CipherSuite,
  keys: { key: Uint8Array; macKey: Uint8Array },
  version: number,
  seq: number,
  type: number,
  content: Uint8Array,
  options: { etm: boolean; explicitIv?: Uint8Array; state?: CbcSealState; extraPadding?: number },
): Buffer {
  const bs = suite.cipher.blockSize;
  const mac = (length: number, data: Uint8Array) =>
    createHmac(suite.mac!, keys.macKey)
      .update(
        Buffer.concat([
          seq8(seq),
          header(type, version, length).subarray(0, 3),
          Buffer.from([length >> 8, length & 0xff]),
        ]),
      )
      .update(data)
      .digest();
  /** padding_length p with (n + p + 1) a multiple of the block size; p + 1 bytes of value p. */
  const pad = (n: number) => {
    const p = ((bs - ((n + 1) % bs)) % bs) + (options.extraPadding ?? 0) * bs;
    return Buffer.alloc(p + 1, p);
  };
  const explicit = version >= 0x0302;
  const iv = explicit ? options.explicitIv! : options.state!.chainIv!;
  const encrypt = (plain: Buffer) => {
    const c = createCipheriv(suite.cipher.nodeName, keys.key, iv);
    c.setAutoPadding(false);
    const out = Buffer.concat([c.update(plain), c.final()]);
    if (!explicit) options.state!.chainIv = out.subarray(out.length - bs);
    return out;
  };
  let fragment: Buffer;
  if (options.etm) {
    const padding = pad(content.length);
    const enc = Buffer.concat([
      explicit ? Buffer.from(iv) : Buffer.alloc(0),
      encrypt(Buffer.concat([content, padding])),
    ]);
    fragment = Buffer.concat([enc, mac(enc.length, enc)]);
  } else {
    const tag = mac(content.length, content);
    const padding = pad(content.length + tag.length);
    const enc = encrypt(Buffer.concat([content, tag, padding]));
    fragment = Buffer.concat([explicit ? Buffer.from(iv) : Buffer.alloc(0), enc]);
  }
  return Buffer.concat([header(type, version, fragment.length), fragment]);
}

/** Builds a plaintext record. */
export function plainRecord(type: number, version: number, body: Uint8Array): Buffer {
  return Buffer.concat([header(type, version, body.length), body]);
}

/** Wraps a handshake body in its 4-byte header. */
export function handshakeMessage(type: number, body: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.from([type, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]),
    body,
  ]);
}

/** A deterministic pseudo-random buffer. */
export function pattern(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length);
  let x = seed * 2654435761;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function u16(n: number): Buffer {
  return Buffer.from([n >> 8, n & 0xff]);
}

function vec(lengthBytes: 1 | 2, body: Uint8Array): Buffer {
  return Buffer.concat([lengthBytes === 1 ? Buffer.from([body.length]) : u16(body.length), body]);
}

export type Extension = readonly [type: number, body: Uint8Array];

export const ext = {
  serverName: (name: string): Extension => [
    0,
    vec(2, Buffer.concat([Buffer.from([0]), vec(2, Buffer.from(name))])),
  ],
  alpn: (...names: string[]): Extension => [
    16,
    vec(2, Buffer.concat(names.map((n) => vec(1, Buffer.from(n))))),
  ],
  clientVersions: (...versions: number[]): Extension => [43, vec(1, Buffer.concat(versions.map(u16)))],
  serverVersion: (version: number): Extension => [43, u16(version)],
  clientKeyShare: (...groups: number[]): Extension => [
    51,
    vec(2, Buffer.concat(groups.map((g) => Buffer.concat([u16(g), vec(2, pattern(32, g))])))),
  ],
  serverKeyShare: (group: number): Extension => [51, Buffer.concat([u16(group), vec(2, pattern(32, group))])],
  hrrKeyShare: (group: number): Extension => [51, u16(group)],
  empty: (type: number): Extension => [type, new Uint8Array(0)],
};

function extensions(list: readonly Extension[]): Buffer {
  return vec(2, Buffer.concat(list.map(([type, body]) => Buffer.concat([u16(type), vec(2, body)]))));
}

export function clientHelloBody(options: {
  random: Uint8Array;
  sessionId?: Uint8Array;
  suites: readonly number[];
  extensions?: readonly Extension[];
  version?: number;
}): Buffer {
  return Buffer.concat([
    u16(options.version ?? 0x0303),
    options.random,
    vec(1, options.sessionId ?? new Uint8Array(0)),
    vec(2, Buffer.concat(options.suites.map(u16))),
    vec(1, Buffer.from([0])),
    options.extensions ? extensions(options.extensions) : Buffer.alloc(0),
  ]);
}

export function serverHelloBody(options: {
  random: Uint8Array;
  sessionId?: Uint8Array;
  suite: number;
  extensions?: readonly Extension[];
  version?: number;
}): Buffer {
  return Buffer.concat([
    u16(options.version ?? 0x0303),
    options.random,
    vec(1, options.sessionId ?? new Uint8Array(0)),
    u16(options.suite),
    Buffer.from([0]),
    options.extensions ? extensions(options.extensions) : Buffer.alloc(0),
  ]);
}

export function encryptedExtensionsBody(list: readonly Extension[]): Buffer {
  return extensions(list);
}
