/**
 * Key schedules. TLS 1.3: HKDF-Expand-Label (RFC 8446 section 7.1), traffic keys (7.3) and the KeyUpdate
 * secret chain (7.2). TLS 1.0-1.2: the PRF (RFC 5246 section 5 with SHA-256 or SHA-384; RFC 2246/4346 section
 * 5 with MD5 XOR SHA-1) and the key block (RFC 5246 section 6.3).
 */
import { createHmac } from "node:crypto";
import { CipherKind, type CipherSuite, TlsVersion } from "./cipher-suites.js";

export type KdfHash = "sha256" | "sha384";

export function hashLength(hash: KdfHash): number {
  return hash === "sha384" ? 48 : 32;
}

/** HKDF-Expand (RFC 5869 section 2.3). */
export function hkdfExpand(hash: KdfHash, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let previous = new Uint8Array(0);
  let filled = 0;
  for (let i = 1; filled < length; i++) {
    const h = createHmac(hash, prk);
    h.update(previous);
    h.update(info);
    h.update(Uint8Array.of(i));
    previous = h.digest();
    out.set(previous.subarray(0, Math.min(previous.length, length - filled)), filled);
    filled += previous.length;
  }
  return out;
}

const LABEL_PREFIX = new TextEncoder().encode("tls13 ");

/** HKDF-Expand-Label(Secret, Label, Context, Length) with the "tls13 " prefix added to `label`. */
export function hkdfExpandLabel(
  hash: KdfHash,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const labelBytes = new TextEncoder().encode(label);
  const info = new Uint8Array(2 + 1 + LABEL_PREFIX.length + labelBytes.length + 1 + context.length);
  info[0] = length >> 8;
  info[1] = length & 0xff;
  info[2] = LABEL_PREFIX.length + labelBytes.length;
  info.set(LABEL_PREFIX, 3);
  info.set(labelBytes, 3 + LABEL_PREFIX.length);
  info[3 + LABEL_PREFIX.length + labelBytes.length] = context.length;
  info.set(context, 4 + LABEL_PREFIX.length + labelBytes.length);
  return hkdfExpand(hash, secret, info, length);
}

export interface TrafficKeys {
  readonly key: Uint8Array;
  readonly iv: Uint8Array;
}

const EMPTY = new Uint8Array(0);

/** [sender]_write_key and [sender]_write_iv from a TLS 1.3 traffic secret (RFC 8446 section 7.3). */
export function deriveTls13TrafficKeys(suite: CipherSuite, secret: Uint8Array): TrafficKeys {
  return {
    key: hkdfExpandLabel(suite.prfHash, secret, "key", EMPTY, suite.cipher.keyLength),
    iv: hkdfExpandLabel(suite.prfHash, secret, "iv", EMPTY, 12),
  };
}

/** application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length). */
export function nextTrafficSecret(hash: KdfHash, secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(hash, secret, "traffic upd", EMPTY, hashLength(hash));
}

/** P_hash (RFC 5246 section 5). */
function pHash(
  hash: "md5" | "sha1" | KdfHash,
  secret: Uint8Array,
  seed: Uint8Array,
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let a: Uint8Array = seed; // A(0)
  let filled = 0;
  while (filled < length) {
    a = createHmac(hash, secret).update(a).digest(); // A(i)
    const block = createHmac(hash, secret).update(a).update(seed).digest();
    out.set(block.subarray(0, Math.min(block.length, length - filled)), filled);
    filled += block.length;
  }
  return out;
}

/**
 * The TLS PRF: for TLS 1.2 P_<hash>(secret, label + seed); for TLS 1.0 and 1.1
 * P_MD5(S1, label + seed) XOR P_SHA-1(S2, label + seed) with S1, S2 the two halves of the secret (sharing the
 * middle byte when its length is odd).
 */
export function tlsPrf(
  version: number,
  hash: KdfHash,
  secret: Uint8Array,
  label: string,
  seed: Uint8Array,
  length: number,
): Uint8Array {
  const labelBytes = new TextEncoder().encode(label);
  const labelSeed = new Uint8Array(labelBytes.length + seed.length);
  labelSeed.set(labelBytes, 0);
  labelSeed.set(seed, labelBytes.length);
  if (version >= TlsVersion.Tls12) return pHash(hash, secret, labelSeed, length);
  const half = Math.ceil(secret.length / 2);
  const md5 = pHash("md5", secret.subarray(0, half), labelSeed, length);
  const sha1 = pHash("sha1", secret.subarray(secret.length - half), labelSeed, length);
  for (let i = 0; i < length; i++) md5[i] = md5[i]! ^ sha1[i]!;
  return md5;
}

/** One side's share of the key block. */
export interface Tls12WriteKeys {
  readonly macKey: Uint8Array;
  readonly key: Uint8Array;
  /** AEAD: the implicit nonce part; TLS 1.0 CBC: the first record's IV; otherwise empty. */
  readonly iv: Uint8Array;
}

export interface Tls12KeyBlock {
  readonly client: Tls12WriteKeys;
  readonly server: Tls12WriteKeys;
}

const MAC_LENGTH: Record<string, number> = { md5: 16, sha1: 20, sha256: 32, sha384: 48 };

export function macLength(mac: string | undefined): number {
  return mac ? (MAC_LENGTH[mac] ?? 0) : 0;
}

/**
 * key_block = PRF(master_secret, "key expansion", server_random + client_random), cut into client and server
 * MAC keys, keys and IVs (RFC 5246 section 6.3). CBC IVs come from the key block only in TLS 1.0; TLS 1.1 and
 * 1.2 carry an explicit IV in each record.
 */
export function deriveTls12KeyBlock(
  version: number,
  suite: CipherSuite,
  masterSecret: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
): Tls12KeyBlock {
  const cipher = suite.cipher;
  const macLen = cipher.kind === CipherKind.Aead ? 0 : macLength(suite.mac);
  const ivLen =
    cipher.kind === CipherKind.Aead
      ? cipher.fixedIvLength
      : cipher.kind === CipherKind.Block && version <= TlsVersion.Tls10
        ? cipher.blockSize
        : 0;
  const seed = new Uint8Array(64);
  seed.set(serverRandom, 0);
  seed.set(clientRandom, 32);
  const total = 2 * (macLen + cipher.keyLength + ivLen);
  const block = tlsPrf(version, suite.prfHash, masterSecret, "key expansion", seed, total);
  let at = 0;
  const take = (n: number) => {
    const part = block.slice(at, at + n);
    at += n;
    return part;
  };
  const clientMac = take(macLen);
  const serverMac = take(macLen);
  const clientKey = take(cipher.keyLength);
  const serverKey = take(cipher.keyLength);
  const clientIv = take(ivLen);
  const serverIv = take(ivLen);
  return {
    client: { macKey: clientMac, key: clientKey, iv: clientIv },
    server: { macKey: serverMac, key: serverKey, iv: serverIv },
  };
}
