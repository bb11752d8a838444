/**
 * Handshake messages: reassembly across records (a message may span records, a record may hold many
 * messages) and the parsers for the hellos and EncryptedExtensions. Parsers return undefined for a
 * malformed message; they never throw.
 */
import { equalBytes, hexToBytes } from "./hex.js";

export const HandshakeType = {
  HelloRequest: 0,
  ClientHello: 1,
  ServerHello: 2,
  NewSessionTicket: 4,
  EndOfEarlyData: 5,
  EncryptedExtensions: 8,
  Certificate: 11,
  ServerKeyExchange: 12,
  CertificateRequest: 13,
  ServerHelloDone: 14,
  CertificateVerify: 15,
  ClientKeyExchange: 16,
  Finished: 20,
  KeyUpdate: 24,
} as const;
export type HandshakeType = (typeof HandshakeType)[keyof typeof HandshakeType];

export const ExtensionType = {
  ServerName: 0,
  SupportedGroups: 10,
  Alpn: 16,
  EncryptThenMac: 22,
  ExtendedMasterSecret: 23,
  SessionTicket: 35,
  PreSharedKey: 41,
  EarlyData: 42,
  SupportedVersions: 43,
  KeyShare: 51,
} as const;

/** SHA-256("HelloRetryRequest"): the ServerHello.random of a HelloRetryRequest (RFC 8446 section 4.1.3). */
export const HELLO_RETRY_REQUEST_RANDOM: Uint8Array = hexToBytes(
  "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c",
)!;

export interface ClientHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  /** The host_name of server_name, if any. */
  readonly serverName: string | undefined;
  readonly alpn: readonly string[];
  /** supported_versions, empty if absent. */
  readonly supportedVersions: readonly number[];
  /** The groups of the key_share entries. */
  readonly keyShareGroups: readonly number[];
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  readonly earlyData: boolean;
  readonly preSharedKey: boolean;
  readonly extensions: readonly number[];
}

export interface ServerHello {
  readonly legacyVersion: number;
  /** The negotiated version: supported_versions if present, else legacy_version. */
  readonly version: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuite: number;
  readonly compression: number;
  readonly helloRetryRequest: boolean;
  /** TLS 1.2 ALPN choice (TLS 1.3 carries it in EncryptedExtensions). */
  readonly alpn: string | undefined;
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  /** TLS 1.3: the server accepted a PSK (resumption). */
  readonly preSharedKey: boolean;
  /** TLS 1.3: the key_share group (for an HRR, the group asked for). */
  readonly keyShareGroup: number | undefined;
  readonly extensions: readonly number[];
}

export interface EncryptedExtensions {
  readonly alpn: string | undefined;
  /** The server accepted 0-RTT data. */
  readonly earlyData: boolean;
}

class Truncated extends Error {}
const TRUNCATED = new Truncated("truncated");

/** Bounds-checked big-endian reader; throws the internal `Truncated`, caught by the parse functions. */
class Reader {
  pos: number;
  constructor(
    private readonly b: Uint8Array,
    start = 0,
    readonly end = b.length,
  ) {
    this.pos = start;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  u8(): number {
    if (this.pos + 1 > this.end) throw TRUNCATED;
    return this.b[this.pos++]!;
  }
  u16(): number {
    if (this.pos + 2 > this.end) throw TRUNCATED;
    const v = (this.b[this.pos]! << 8) | this.b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.end) throw TRUNCATED;
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A sub-reader over a vector with a `lengthBytes`-byte length prefix. */
  vector(lengthBytes: 1 | 2): Reader {
    const n = lengthBytes === 1 ? this.u8() : this.u16();
    if (this.pos + n > this.end) throw TRUNCATED;
    const r = new Reader(this.b, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
}

const latin1 = new TextDecoder("latin1");

function protocols(r: Reader): string[] {
  const list = r.vector(2);
  const out: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1);
    out.push(latin1.decode(name.bytes(name.remaining)));
  }
  return out;
}

/** Parses a ClientHello body (without the 4-byte handshake header). */
export function parseClientHello(body: Uint8Array): ClientHello | undefined {
  try {
    const r = new Reader(body);
    const legacyVersion = r.u16();
    const random = r.bytes(32).slice();
    const sid = r.vector(1);
    const sessionId = sid.bytes(sid.remaining).slice();
    const suites = r.vector(2);
    const cipherSuites: number[] = [];
    while (suites.remaining >= 2) cipherSuites.push(suites.u16());
    r.vector(1); // compression methods
    let serverName: string | undefined;
    let alpn: string[] = [];
    const supportedVersions: number[] = [];
    const keyShareGroups: number[] = [];
    const extensions: number[] = [];
    if (r.remaining > 0) {
      const exts = r.vector(2);
      while (exts.remaining > 0) {
        const type = exts.u16();
        const ext = exts.vector(2);
        extensions.push(type);
        switch (type) {
          case ExtensionType.ServerName: {
            const list = ext.vector(2);
            while (list.remaining > 0) {
              const nameType = list.u8();
              const name = list.vector(2);
              if (nameType === 0 && serverName === undefined)
                serverName = latin1.decode(name.bytes(name.remaining));
            }
            break;
          }
          case ExtensionType.Alpn:
            alpn = protocols(ext);
            break;
          case ExtensionType.SupportedVersions: {
            const list = ext.vector(1);
            while (list.remaining >= 2) supportedVersions.push(list.u16());
            break;
          }
          case ExtensionType.KeyShare: {
            const list = ext.vector(2);
            while (list.remaining > 0) {
              keyShareGroups.push(list.u16());
              list.vector(2);
            }
            break;
          }
        }
      }
    }
    return {
      legacyVersion,
      random,
      sessionId,
      cipherSuites,
      serverName,
      alpn,
      supportedVersions,
      keyShareGroups,
      extendedMasterSecret: extensions.includes(ExtensionType.ExtendedMasterSecret),
      encryptThenMac: extensions.includes(ExtensionType.EncryptThenMac),
      earlyData: extensions.includes(ExtensionType.EarlyData),
      preSharedKey: extensions.includes(ExtensionType.PreSharedKey),
      extensions,
    };
  } catch (err) {
    if (err instanceof Truncated) return undefined;
    throw err;
  }
}

/** Parses a ServerHello (or HelloRetryRequest) body. */
export function parseServerHello(body: Uint8Array): ServerHello | undefined {
  try {
    const r = new Reader(body);
    const legacyVersion = r.u16();
    const random = r.bytes(32).slice();
    const sid = r.vector(1);
    const sessionId = sid.bytes(sid.remaining).slice();
    const cipherSuite = r.u16();
    const compression = r.u8();
    let version = legacyVersion;
    let alpn: string | undefined;
    let keyShareGroup: number | undefined;
    const helloRetryRequest = equalBytes(random, HELLO_RETRY_REQUEST_RANDOM);
    const extensions: number[] = [];
    if (r.remaining > 0) {
      const exts = r.vector(2);
      while (exts.remaining > 0) {
        const type = exts.u16();
        const ext = exts.vector(2);
        extensions.push(type);
        switch (type) {
          case ExtensionType.SupportedVersions:
            version = ext.u16();
            break;
          case ExtensionType.Alpn:
            alpn = protocols(ext)[0];
            break;
          case ExtensionType.KeyShare:
            keyShareGroup = ext.u16();
            break;
        }
      }
    }
    return {
      legacyVersion,
      version,
      random,
      sessionId,
      cipherSuite,
      compression,
      helloRetryRequest,
      alpn,
      extendedMasterSecret: extensions.includes(ExtensionType.ExtendedMasterSecret),
      encryptThenMac: extensions.includes(ExtensionType.EncryptThenMac),
      preSharedKey: extensions.includes(ExtensionType.PreSharedKey),
      keyShareGroup,
      extensions,
    };
  } catch (err) {
    if (err instanceof Truncated) return undefined;
    throw err;
  }
}

/** Parses a TLS 1.3 EncryptedExtensions body. */
export function parseEncryptedExtensions(body: Uint8Array): EncryptedExtensions | undefined {
  try {
    const r = new Reader(body);
    const exts = r.vector(2);
    let alpn: string | undefined;
    let earlyData = false;
    while (exts.remaining > 0) {
      const type = exts.u16();
      const ext = exts.vector(2);
      if (type === ExtensionType.Alpn) alpn = protocols(ext)[0];
      else if (type === ExtensionType.EarlyData) earlyData = true;
    }
    return { alpn, earlyData };
  } catch (err) {
    if (err instanceof Truncated) return undefined;
    throw err;
  }
}

export type HandshakeMessageSink = (type: number, body: Uint8Array | undefined, length: number) => void;

/**
 * Reassembles handshake messages from record fragments. Bodies of the types in `keep` are delivered (a view
 * of the fragment when the message lies in one fragment, else a copy); other messages, and kept ones longer
 * than `maxMessageBytes`, are skipped without being buffered and delivered with an undefined body.
 */
export class HandshakeReassembler {
  private readonly header = new Uint8Array(4);
  private headerFilled = 0;
  private type = 0;
  private length = 0;
  private remaining = 0;
  private body: Uint8Array | undefined;
  private bodyFilled = 0;
  /** Messages whose body was too large to keep. */
  oversizedMessages = 0;

  constructor(
    private readonly keep: ReadonlySet<number>,
    private readonly maxMessageBytes: number,
  ) {}

  /** True when a message is partly received. */
  get partial(): boolean {
    return this.headerFilled > 0;
  }

  /** Drops a partly received message (at a key change, where messages must not span). */
  reset(): void {
    this.headerFilled = 0;
    this.body = undefined;
    this.bodyFilled = 0;
    this.remaining = 0;
  }

  push(fragment: Uint8Array, sink: HandshakeMessageSink): void {
    let pos = 0;
    const n = fragment.length;
    while (pos < n) {
      if (this.headerFilled < 4) {
        if (this.headerFilled === 0 && n - pos >= 4) {
          const type = fragment[pos]!;
          const length = (fragment[pos + 1]! << 16) | (fragment[pos + 2]! << 8) | fragment[pos + 3]!;
          if (n - pos - 4 >= length) {
            // Fast path: the whole message is in this fragment.
            const keep = this.keep.has(type) && length <= this.maxMessageBytes;
            if (this.keep.has(type) && !keep) this.oversizedMessages++;
            sink(type, keep ? fragment.subarray(pos + 4, pos + 4 + length) : undefined, length);
            pos += 4 + length;
            continue;
          }
        }
        while (this.headerFilled < 4 && pos < n) this.header[this.headerFilled++] = fragment[pos++]!;
        if (this.headerFilled < 4) return;
        this.type = this.header[0]!;
        this.length = (this.header[1]! << 16) | (this.header[2]! << 8) | this.header[3]!;
        this.remaining = this.length;
        this.bodyFilled = 0;
        const keep = this.keep.has(this.type) && this.length <= this.maxMessageBytes;
        if (this.keep.has(this.type) && !keep) this.oversizedMessages++;
        this.body = keep ? new Uint8Array(this.length) : undefined;
      }
      const take = Math.min(this.remaining, n - pos);
      if (this.body) this.body.set(fragment.subarray(pos, pos + take), this.bodyFilled);
      this.bodyFilled += take;
      this.remaining -= take;
      pos += take;
      if (this.remaining === 0) {
        const body = this.body;
        const type = this.type;
        const length = this.length;
        this.reset();
        sink(type, body, length);
      }
    }
  }
}

export interface TlsAlert {
  /** 1 = warning, 2 = fatal. */
  readonly level: number;
  readonly description: number;
}

export const AlertDescription = {
  CloseNotify: 0,
  UnexpectedMessage: 10,
  BadRecordMac: 20,
  HandshakeFailure: 40,
  DecryptError: 51,
  ProtocolVersion: 70,
  InternalError: 80,
  UserCanceled: 90,
} as const;
