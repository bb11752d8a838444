/**
 * Record protection, receive side: one opener per direction and key epoch. Each keeps its keys, nonce and
 * additional-data buffers for the life of the epoch, so opening a record allocates only the decipher and its
 * output. An opener's sequence number (and, for TLS 1.0 CBC, its IV chain) advances only when a record opens.
 */
import { createDecipheriv, createHmac, timingSafeEqual } from "node:crypto";
import { CipherKind, type CipherSuite, TlsVersion } from "./cipher-suites.js";
import { deriveTls13TrafficKeys, macLength, nextTrafficSecret, type Tls12WriteKeys } from "./key-schedule.js";
import { NativeAeadContext, NativeCbcContext, NativeHmac, takePlaintextBuffer } from "./native-aead.js";

export const IntegrityFailure = {
  /** The AEAD tag did not verify. */
  AeadTag: "aead-tag",
  /** The record MAC (HMAC) did not verify. */
  Mac: "mac",
  /** CBC padding is malformed. */
  Padding: "padding",
  /** The record is too short or not a whole number of blocks. */
  RecordLength: "record-length",
  /** A TLS 1.3 record decrypted to nothing but zeros (no inner content type). */
  NoInnerContentType: "no-inner-content-type",
} as const;
export type IntegrityFailure = (typeof IntegrityFailure)[keyof typeof IntegrityFailure];

export interface RecordOpener {
  /**
   * Opens one record. Returns undefined on success (then `contentType` and `plaintext` hold the result until
   * the next call; `plaintext` is a fresh buffer the caller may keep) or the reason it failed.
   */
  open(type: number, version: number, fragment: Uint8Array): IntegrityFailure | undefined;
  contentType: number;
  plaintext: Uint8Array;
  /** Records opened so far in this epoch (the next record's sequence number). */
  readonly sequence: number;
}

const EMPTY = new Uint8Array(0);

/** Writes `seq` (below 2^53) as 8 big-endian bytes XORed into `out` at `offset`. */
function xorSequence(out: Uint8Array, offset: number, seq: number): void {
  const high = Math.floor(seq / 0x100000000);
  const low = seq >>> 0;
  out[offset] = out[offset]! ^ (high >>> 24);
  out[offset + 1] = out[offset + 1]! ^ ((high >>> 16) & 0xff);
  out[offset + 2] = out[offset + 2]! ^ ((high >>> 8) & 0xff);
  out[offset + 3] = out[offset + 3]! ^ (high & 0xff);
  out[offset + 4] = out[offset + 4]! ^ (low >>> 24);
  out[offset + 5] = out[offset + 5]! ^ ((low >>> 16) & 0xff);
  out[offset + 6] = out[offset + 6]! ^ ((low >>> 8) & 0xff);
  out[offset + 7] = out[offset + 7]! ^ (low & 0xff);
}

/** MACs compare equal (timing-safe; a MAC of another length, e.g. a failed computation, never does). */
function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

function writeSequence(out: Uint8Array, seq: number): void {
  out.fill(0, 0, 8);
  xorSequence(out, 0, seq);
}

/**
 * One direction's AEAD decryption for one key: the native opener when it handles the cipher (a kept
 * context, plaintext into reused buffers), else node:crypto (a new decipher per record; CCM always).
 */
class AeadDecrypter {
  readonly tagLength: number;
  private readonly nodeName: string;
  private readonly ccm: boolean;
  private readonly cipherOptions: { authTagLength: number };
  private readonly ccmAadOptions = { plaintextLength: 0 };
  /** The native opener's context for this key, when it handles the cipher. */
  readonly native: NativeAeadContext | undefined;

  constructor(
    suite: CipherSuite,
    private readonly key: Uint8Array,
    useNative: boolean,
  ) {
    this.nodeName = suite.cipher.nodeName;
    this.tagLength = suite.cipher.tagLength;
    this.ccm = this.nodeName.endsWith("-ccm");
    this.cipherOptions = { authTagLength: this.tagLength };
    this.native = useNative ? NativeAeadContext.create(this.nodeName, this.tagLength, key) : undefined;
  }

  /** The plaintext of `ct` under `nonce` and `aad`, or undefined when `tag` does not verify. */
  open(nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array, tag: Uint8Array): Uint8Array | undefined {
    if (this.native) {
      const out = takePlaintextBuffer(ct.length);
      return this.native.open(nonce, aad, ct, tag, out) ? out : undefined;
    }
    try {
      const d = createDecipheriv(this.nodeName as "aes-128-gcm", this.key, nonce, this.cipherOptions);
      d.setAuthTag(tag);
      if (this.ccm) {
        this.ccmAadOptions.plaintextLength = ct.length;
        d.setAAD(aad, this.ccmAadOptions);
      } else {
        d.setAAD(aad);
      }
      const out = d.update(ct);
      d.final();
      return out;
    } catch {
      return undefined;
    }
  }
}

/** TLS 1.3 (RFC 8446 section 5.2): AEAD over the whole inner plaintext, nonce = iv XOR sequence. */
export class Tls13RecordOpener implements RecordOpener {
  contentType = 0;
  plaintext: Uint8Array = EMPTY;
  sequence = 0;
  private readonly iv: Uint8Array;
  private readonly nonce = Buffer.alloc(12);
  private readonly aad = Buffer.alloc(5);
  private readonly aead: AeadDecrypter;

  constructor(
    private readonly suite: CipherSuite,
    private readonly secret: Uint8Array,
    useNative = true,
  ) {
    const keys = deriveTls13TrafficKeys(suite, secret);
    this.iv = keys.iv;
    this.aead = new AeadDecrypter(suite, keys.key, useNative);
  }

  /** The opener for the next epoch after a KeyUpdate from this direction's sender. */
  next(): Tls13RecordOpener {
    return new Tls13RecordOpener(
      this.suite,
      nextTrafficSecret(this.suite.prfHash, this.secret),
      this.aead.native !== undefined,
    );
  }

  open(type: number, version: number, fragment: Uint8Array): IntegrityFailure | undefined {
    const n = fragment.length;
    const ctLength = n - this.aead.tagLength;
    if (ctLength < 1) return IntegrityFailure.RecordLength;
    const nonce = this.nonce;
    nonce.set(this.iv);
    xorSequence(nonce, 4, this.sequence);
    const aad = this.aad;
    aad[0] = type;
    aad[1] = version >> 8;
    aad[2] = version & 0xff;
    aad[3] = n >> 8;
    aad[4] = n & 0xff;
    const out = this.aead.open(nonce, aad, fragment.subarray(0, ctLength), fragment.subarray(ctLength));
    if (!out) return IntegrityFailure.AeadTag;
    let i = out.length - 1;
    while (i >= 0 && out[i] === 0) i--;
    if (i < 0) return IntegrityFailure.NoInnerContentType;
    this.sequence++;
    this.contentType = out[i]!;
    this.plaintext = out.subarray(0, i);
    return undefined;
  }
}

/**
 * TLS 1.2 AEAD. GCM and CCM (RFC 5288, RFC 6655): nonce = 4-byte salt from the key block + 8-byte explicit
 * nonce at the start of the record. ChaCha20-Poly1305 (RFC 7905): nonce = 12-byte IV XOR sequence, nothing
 * explicit. Additional data = seq_num + type + version + plaintext length.
 */
export class Tls12AeadOpener implements RecordOpener {
  contentType = 0;
  plaintext: Uint8Array = EMPTY;
  sequence = 0;
  private readonly explicitLength: number;
  private readonly iv: Uint8Array;
  private readonly nonce = Buffer.alloc(12);
  private readonly aad = Buffer.alloc(13);
  private readonly aead: AeadDecrypter;

  constructor(suite: CipherSuite, keys: Tls12WriteKeys, useNative = true) {
    this.explicitLength = suite.cipher.explicitNonceLength;
    this.iv = keys.iv;
    this.aead = new AeadDecrypter(suite, keys.key, useNative);
  }

  open(type: number, version: number, fragment: Uint8Array): IntegrityFailure | undefined {
    const n = fragment.length;
    const explicit = this.explicitLength;
    const tagLength = this.aead.tagLength;
    const ctLength = n - explicit - tagLength;
    if (ctLength < 0) return IntegrityFailure.RecordLength;
    const nonce = this.nonce;
    if (explicit > 0) {
      nonce.set(this.iv, 0);
      nonce.set(fragment.subarray(0, explicit), this.iv.length);
    } else {
      nonce.set(this.iv);
      xorSequence(nonce, 4, this.sequence);
    }
    const aad = this.aad;
    writeSequence(aad, this.sequence);
    aad[8] = type;
    aad[9] = version >> 8;
    aad[10] = version & 0xff;
    aad[11] = ctLength >> 8;
    aad[12] = ctLength & 0xff;
    const ct = fragment.subarray(explicit, explicit + ctLength);
    const out = this.aead.open(nonce, aad, ct, fragment.subarray(n - tagLength));
    if (!out) return IntegrityFailure.AeadTag;
    this.sequence++;
    this.contentType = type;
    this.plaintext = out;
    return undefined;
  }
}

/**
 * TLS 1.0-1.2 CBC with HMAC: MAC-then-encrypt (RFC 5246 section 6.2.3.2), or encrypt-then-MAC when the
 * extension was negotiated (RFC 7366). TLS 1.1+ carry an explicit IV per record; TLS 1.0 chains the IV from
 * the last ciphertext block of the previous record (the first from the key block).
 */
export class Tls12CbcOpener implements RecordOpener {
  contentType = 0;
  plaintext: Uint8Array = EMPTY;
  sequence = 0;
  private readonly nodeName: string;
  private readonly blockSize: number;
  private readonly macName: string;
  private readonly macLength: number;
  private readonly explicitIv: boolean;
  private readonly key: Uint8Array;
  private readonly macKey: Uint8Array;
  /** TLS 1.0: the IV of the next record. */
  private chainIv: Uint8Array;
  /** seq_num + type + version + length, the MAC's header. */
  private readonly macHeader = Buffer.alloc(13);
  /** The native CBC and HMAC contexts, when the native opener is there. */
  private readonly nativeCbc: NativeCbcContext | undefined;
  private readonly nativeMac: NativeHmac | undefined;

  constructor(
    suite: CipherSuite,
    version: number,
    keys: Tls12WriteKeys,
    private readonly encryptThenMac: boolean,
    useNative = true,
  ) {
    this.nodeName = suite.cipher.nodeName;
    this.blockSize = suite.cipher.blockSize;
    this.macName = suite.mac ?? "sha1";
    this.macLength = macLength(suite.mac);
    this.explicitIv = version >= TlsVersion.Tls11;
    this.key = keys.key;
    this.macKey = keys.macKey;
    this.chainIv = keys.iv;
    this.nativeCbc = useNative ? NativeCbcContext.create(this.nodeName, this.key) : undefined;
    this.nativeMac = useNative ? NativeHmac.create(this.macName, this.macKey) : undefined;
  }

  /** The record MAC over the header and `data`. */
  private mac(type: number, version: number, length: number, data: Uint8Array): Uint8Array {
    const header = this.macHeader;
    writeSequence(header, this.sequence);
    header[8] = type;
    header[9] = version >> 8;
    header[10] = version & 0xff;
    header[11] = length >> 8;
    header[12] = length & 0xff;
    if (this.nativeMac) {
      const n = this.nativeMac.mac(header, data);
      return this.nativeMac.out.subarray(0, n);
    }
    return createHmac(this.macName, this.macKey).update(header).update(data).digest();
  }

  private decrypt(iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
    if (this.nativeCbc) {
      const out = takePlaintextBuffer(ciphertext.length);
      return this.nativeCbc.decrypt(iv, ciphertext, out) ? out : undefined;
    }
    const d = createDecipheriv(this.nodeName, this.key, iv);
    d.setAutoPadding(false);
    const out = d.update(ciphertext);
    d.final();
    return out;
  }

  /** Length of the TLS padding (including its length byte) if well formed, else -1. */
  private static paddingLength(block: Uint8Array, end: number): number {
    const pad = block[end - 1]!;
    if (pad + 1 > end) return -1;
    for (let i = end - 1 - pad; i < end - 1; i++) if (block[i] !== pad) return -1;
    return pad + 1;
  }

  open(type: number, version: number, fragment: Uint8Array): IntegrityFailure | undefined {
    const bs = this.blockSize;
    const macLen = this.macLength;
    const ivLen = this.explicitIv ? bs : 0;
    const n = fragment.length;
    if (this.encryptThenMac) {
      const encLength = n - macLen;
      const ctLength = encLength - ivLen;
      if (ctLength < bs || ctLength % bs !== 0) return IntegrityFailure.RecordLength;
      const encrypted = fragment.subarray(0, encLength);
      const expected = this.mac(type, version, encLength, encrypted);
      if (!macEquals(expected, fragment.subarray(encLength))) return IntegrityFailure.Mac;
      const iv = this.explicitIv ? fragment.subarray(0, bs) : this.chainIv;
      const ciphertext = fragment.subarray(ivLen, encLength);
      const out = this.decrypt(iv, ciphertext);
      if (!out) return IntegrityFailure.RecordLength;
      const padLength = Tls12CbcOpener.paddingLength(out, out.length);
      if (padLength < 0) return IntegrityFailure.Padding;
      if (!this.explicitIv) this.chainIv = ciphertext.slice(ciphertext.length - bs);
      this.sequence++;
      this.contentType = type;
      this.plaintext = out.subarray(0, out.length - padLength);
      return undefined;
    }
    const ctLength = n - ivLen;
    if (ctLength < bs || ctLength % bs !== 0 || ctLength < macLen + 1) return IntegrityFailure.RecordLength;
    const iv = this.explicitIv ? fragment.subarray(0, bs) : this.chainIv;
    const ciphertext = fragment.subarray(ivLen);
    const out = this.decrypt(iv, ciphertext);
    if (!out) return IntegrityFailure.RecordLength;
    const padLength = Tls12CbcOpener.paddingLength(out, out.length);
    if (padLength < 0 || padLength + macLen > out.length) return IntegrityFailure.Padding;
    const contentLength = out.length - padLength - macLen;
    const content = out.subarray(0, contentLength);
    const expected = this.mac(type, version, contentLength, content);
    if (!macEquals(expected, out.subarray(contentLength, contentLength + macLen)))
      return IntegrityFailure.Mac;
    if (!this.explicitIv) this.chainIv = ciphertext.slice(ciphertext.length - bs);
    this.sequence++;
    this.contentType = type;
    this.plaintext = content;
    return undefined;
  }
}

/** NULL encryption with a MAC (TLS_RSA_WITH_NULL_*): fragment = content + MAC. */
export class Tls12NullOpener implements RecordOpener {
  contentType = 0;
  plaintext: Uint8Array = EMPTY;
  sequence = 0;
  private readonly macName: string;
  private readonly macLength: number;
  private readonly macHeader = Buffer.alloc(13);

  constructor(
    suite: CipherSuite,
    private readonly keys: Tls12WriteKeys,
  ) {
    this.macName = suite.mac ?? "sha1";
    this.macLength = macLength(suite.mac);
  }

  open(type: number, version: number, fragment: Uint8Array): IntegrityFailure | undefined {
    const contentLength = fragment.length - this.macLength;
    if (contentLength < 0) return IntegrityFailure.RecordLength;
    const header = this.macHeader;
    writeSequence(header, this.sequence);
    header[8] = type;
    header[9] = version >> 8;
    header[10] = version & 0xff;
    header[11] = contentLength >> 8;
    header[12] = contentLength & 0xff;
    const content = fragment.subarray(0, contentLength);
    const expected = createHmac(this.macName, this.keys.macKey).update(header).update(content).digest();
    if (!timingSafeEqual(expected, fragment.subarray(contentLength))) return IntegrityFailure.Mac;
    this.sequence++;
    this.contentType = type;
    this.plaintext = content.slice(); // the fragment may be a view of the caller's chunk
    return undefined;
  }
}

/**
 * The opener for one direction of a TLS 1.0-1.2 connection, or undefined if the suite is not implemented.
 * `useNative` false keeps AEAD suites on node:crypto even when the native opener is there (tests).
 */
export function createTls12Opener(
  suite: CipherSuite,
  version: number,
  keys: Tls12WriteKeys,
  encryptThenMac: boolean,
  useNative = true,
): RecordOpener | undefined {
  if (!suite.supported || suite.tls13) return undefined;
  switch (suite.cipher.kind) {
    case CipherKind.Aead:
      return version >= TlsVersion.Tls12 ? new Tls12AeadOpener(suite, keys, useNative) : undefined;
    case CipherKind.Block:
      return new Tls12CbcOpener(suite, version, keys, encryptThenMac, useNative);
    case CipherKind.Null:
      return new Tls12NullOpener(suite, keys);
    default:
      return undefined;
  }
}
