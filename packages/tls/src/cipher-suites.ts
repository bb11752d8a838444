/**
 * Cipher suites by IANA code: name, bulk cipher, MAC and PRF hash. The key exchange does not matter to a
 * decoder that is given the secrets, so it only shows in the name.
 *
 * A suite is `supported` when this package implements its record protection and the node:crypto build has
 * the cipher (checked once at load with `getCiphers()`).
 */
import { getCiphers } from "node:crypto";

export const CipherKind = {
  Aead: "aead",
  Block: "block",
  Null: "null",
  Stream: "stream",
} as const;
export type CipherKind = (typeof CipherKind)[keyof typeof CipherKind];

export type HashName = "md5" | "sha1" | "sha256" | "sha384";

export interface BulkCipher {
  /** Our name, e.g. "aes-128-gcm", "aes-128-ccm-8". */
  readonly name: string;
  /** The node:crypto cipher name ("" for NULL). */
  readonly nodeName: string;
  readonly kind: CipherKind;
  readonly keyLength: number;
  /** Block size for CBC ciphers, 0 otherwise. */
  readonly blockSize: number;
  /** AEAD tag length, 0 otherwise. */
  readonly tagLength: number;
  /** TLS 1.2 AEAD: bytes of the nonce taken from the key block (4 for GCM/CCM, 12 for ChaCha20). */
  readonly fixedIvLength: number;
  /** TLS 1.2 AEAD: explicit nonce bytes carried in each record (8 for GCM/CCM, 0 for ChaCha20). */
  readonly explicitNonceLength: number;
  /** True when node:crypto has the cipher (NULL is always available). */
  readonly available: boolean;
}

export interface CipherSuite {
  readonly code: number;
  /** IANA name. */
  readonly name: string;
  /** A TLS 1.3 suite (HKDF key schedule, AEAD only). */
  readonly tls13: boolean;
  readonly cipher: BulkCipher;
  /** Record MAC for block, stream and NULL ciphers; undefined for AEAD. */
  readonly mac: HashName | undefined;
  /** TLS 1.2 PRF hash, or the TLS 1.3 HKDF hash. (TLS 1.0/1.1 always use the MD5/SHA-1 PRF.) */
  readonly prfHash: "sha256" | "sha384";
  /** Whether this package can decrypt records of this suite with this node:crypto build. */
  readonly supported: boolean;
}

const NODE_CIPHERS: ReadonlySet<string> = new Set(getCiphers());

function bulk(
  name: string,
  nodeName: string,
  kind: CipherKind,
  keyLength: number,
  extra: Partial<Pick<BulkCipher, "blockSize" | "tagLength" | "fixedIvLength" | "explicitNonceLength">> = {},
): BulkCipher {
  return {
    name,
    nodeName,
    kind,
    keyLength,
    blockSize: extra.blockSize ?? 0,
    tagLength: extra.tagLength ?? 0,
    fixedIvLength: extra.fixedIvLength ?? 0,
    explicitNonceLength: extra.explicitNonceLength ?? 0,
    available: kind === CipherKind.Null || NODE_CIPHERS.has(nodeName),
  };
}

const gcm = { tagLength: 16, fixedIvLength: 4, explicitNonceLength: 8 };
const ccm16 = { tagLength: 16, fixedIvLength: 4, explicitNonceLength: 8 };
const ccm8 = { tagLength: 8, fixedIvLength: 4, explicitNonceLength: 8 };

export const BulkCiphers = {
  Aes128Gcm: bulk("aes-128-gcm", "aes-128-gcm", CipherKind.Aead, 16, gcm),
  Aes256Gcm: bulk("aes-256-gcm", "aes-256-gcm", CipherKind.Aead, 32, gcm),
  Aria128Gcm: bulk("aria-128-gcm", "aria-128-gcm", CipherKind.Aead, 16, gcm),
  Aria256Gcm: bulk("aria-256-gcm", "aria-256-gcm", CipherKind.Aead, 32, gcm),
  Aes128Ccm: bulk("aes-128-ccm", "aes-128-ccm", CipherKind.Aead, 16, ccm16),
  Aes256Ccm: bulk("aes-256-ccm", "aes-256-ccm", CipherKind.Aead, 32, ccm16),
  Aes128Ccm8: bulk("aes-128-ccm-8", "aes-128-ccm", CipherKind.Aead, 16, ccm8),
  Aes256Ccm8: bulk("aes-256-ccm-8", "aes-256-ccm", CipherKind.Aead, 32, ccm8),
  ChaCha20Poly1305: bulk("chacha20-poly1305", "chacha20-poly1305", CipherKind.Aead, 32, {
    tagLength: 16,
    fixedIvLength: 12,
    explicitNonceLength: 0,
  }),
  Aes128Cbc: bulk("aes-128-cbc", "aes-128-cbc", CipherKind.Block, 16, { blockSize: 16 }),
  Aes256Cbc: bulk("aes-256-cbc", "aes-256-cbc", CipherKind.Block, 32, { blockSize: 16 }),
  Camellia128Cbc: bulk("camellia-128-cbc", "camellia-128-cbc", CipherKind.Block, 16, { blockSize: 16 }),
  Camellia256Cbc: bulk("camellia-256-cbc", "camellia-256-cbc", CipherKind.Block, 32, { blockSize: 16 }),
  TripleDesCbc: bulk("3des-ede-cbc", "des-ede3-cbc", CipherKind.Block, 24, { blockSize: 8 }),
  Rc4128: bulk("rc4-128", "rc4", CipherKind.Stream, 16),
  Null: bulk("null", "", CipherKind.Null, 0),
} as const;

type Row = readonly [
  code: number,
  name: string,
  cipher: BulkCipher,
  mac: HashName | undefined,
  prf?: "sha384",
];

const B = BulkCiphers;
/** TLS 1.0-1.2 suites. The PRF hash is SHA-256 unless the row says SHA-384 (RFC 5246 section 5, RFC 5289). */
const TLS12_ROWS: readonly Row[] = [
  [0x0001, "TLS_RSA_WITH_NULL_MD5", B.Null, "md5"],
  [0x0002, "TLS_RSA_WITH_NULL_SHA", B.Null, "sha1"],
  [0x003b, "TLS_RSA_WITH_NULL_SHA256", B.Null, "sha256"],
  [0x0004, "TLS_RSA_WITH_RC4_128_MD5", B.Rc4128, "md5"],
  [0x0005, "TLS_RSA_WITH_RC4_128_SHA", B.Rc4128, "sha1"],
  [0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", B.Rc4128, "sha1"],
  [0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", B.TripleDesCbc, "sha1"],
  [0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", B.TripleDesCbc, "sha1"],
  [0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", B.TripleDesCbc, "sha1"],
  [0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", B.TripleDesCbc, "sha1"],
  [0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256", B.Aes256Cbc, "sha256"],
  [0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", B.Aes256Cbc, "sha256"],
  [0x008c, "TLS_PSK_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0x008d, "TLS_PSK_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0x00ae, "TLS_PSK_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0x00af, "TLS_PSK_WITH_AES_256_CBC_SHA384", B.Aes256Cbc, "sha384", "sha384"],
  [0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", B.Aes256Cbc, "sha384", "sha384"],
  [0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", B.Aes256Cbc, "sha384", "sha384"],
  [0xc035, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", B.Aes128Cbc, "sha1"],
  [0xc036, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA", B.Aes256Cbc, "sha1"],
  [0xc037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", B.Aes128Cbc, "sha256"],
  [0xc038, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384", B.Aes256Cbc, "sha384", "sha384"],
  [0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", B.Camellia128Cbc, "sha1"],
  [0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", B.Camellia256Cbc, "sha1"],
  [0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA", B.Camellia128Cbc, "sha1"],
  [0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA", B.Camellia256Cbc, "sha1"],
  [0x00ba, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256", B.Camellia128Cbc, "sha256"],
  [0x00c0, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256", B.Camellia256Cbc, "sha256"],
  [0xc072, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256", B.Camellia128Cbc, "sha256"],
  [0xc073, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384", B.Camellia256Cbc, "sha384", "sha384"],
  [0xc076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", B.Camellia128Cbc, "sha256"],
  [0xc077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384", B.Camellia256Cbc, "sha384", "sha384"],
  [0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0x00a8, "TLS_PSK_WITH_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0x00a9, "TLS_PSK_WITH_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0xc050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256", B.Aria128Gcm, undefined],
  [0xc051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384", B.Aria256Gcm, undefined, "sha384"],
  [0xc05c, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256", B.Aria128Gcm, undefined],
  [0xc05d, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384", B.Aria256Gcm, undefined, "sha384"],
  [0xc060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256", B.Aria128Gcm, undefined],
  [0xc061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384", B.Aria256Gcm, undefined, "sha384"],
  [0xc09c, "TLS_RSA_WITH_AES_128_CCM", B.Aes128Ccm, undefined],
  [0xc09d, "TLS_RSA_WITH_AES_256_CCM", B.Aes256Ccm, undefined],
  [0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM", B.Aes128Ccm, undefined],
  [0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM", B.Aes256Ccm, undefined],
  [0xc0a0, "TLS_RSA_WITH_AES_128_CCM_8", B.Aes128Ccm8, undefined],
  [0xc0a1, "TLS_RSA_WITH_AES_256_CCM_8", B.Aes256Ccm8, undefined],
  [0xc0a2, "TLS_DHE_RSA_WITH_AES_128_CCM_8", B.Aes128Ccm8, undefined],
  [0xc0a3, "TLS_DHE_RSA_WITH_AES_256_CCM_8", B.Aes256Ccm8, undefined],
  [0xc0a4, "TLS_PSK_WITH_AES_128_CCM", B.Aes128Ccm, undefined],
  [0xc0a5, "TLS_PSK_WITH_AES_256_CCM", B.Aes256Ccm, undefined],
  [0xc0a8, "TLS_PSK_WITH_AES_128_CCM_8", B.Aes128Ccm8, undefined],
  [0xc0a9, "TLS_PSK_WITH_AES_256_CCM_8", B.Aes256Ccm8, undefined],
  [0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", B.Aes128Ccm, undefined],
  [0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", B.Aes256Ccm, undefined],
  [0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", B.Aes128Ccm8, undefined],
  [0xc0af, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", B.Aes256Ccm8, undefined],
  [0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xccab, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xccac, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xccad, "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0xccae, "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
];

/** TLS 1.3 suites (RFC 8446 appendix B.4). */
const TLS13_ROWS: readonly Row[] = [
  [0x1301, "TLS_AES_128_GCM_SHA256", B.Aes128Gcm, undefined],
  [0x1302, "TLS_AES_256_GCM_SHA384", B.Aes256Gcm, undefined, "sha384"],
  [0x1303, "TLS_CHACHA20_POLY1305_SHA256", B.ChaCha20Poly1305, undefined],
  [0x1304, "TLS_AES_128_CCM_SHA256", B.Aes128Ccm, undefined],
  [0x1305, "TLS_AES_128_CCM_8_SHA256", B.Aes128Ccm8, undefined],
];

function suite(row: Row, tls13: boolean): CipherSuite {
  const [code, name, cipher, mac, prf] = row;
  // RC4 is prohibited (RFC 7465) and not implemented here even where OpenSSL still has it.
  const implemented = cipher.kind !== CipherKind.Stream;
  return {
    code,
    name,
    tls13,
    cipher,
    mac,
    prfHash: prf ?? "sha256",
    supported: implemented && cipher.available,
  };
}

const TABLE: ReadonlyMap<number, CipherSuite> = new Map(
  [...TLS12_ROWS.map((r) => suite(r, false)), ...TLS13_ROWS.map((r) => suite(r, true))].map((s) => [
    s.code,
    s,
  ]),
);

/** Every suite of the table, by code. */
export const CIPHER_SUITES: ReadonlyMap<number, CipherSuite> = TABLE;

export function getCipherSuite(code: number): CipherSuite | undefined {
  return TABLE.get(code);
}

/** The IANA name, or `0x1234` for a code not in the table. */
export function cipherSuiteName(code: number): string {
  return TABLE.get(code)?.name ?? `0x${code.toString(16).padStart(4, "0")}`;
}

export const TlsVersion = {
  Ssl30: 0x0300,
  Tls10: 0x0301,
  Tls11: 0x0302,
  Tls12: 0x0303,
  Tls13: 0x0304,
} as const;
export type TlsVersion = (typeof TlsVersion)[keyof typeof TlsVersion];

/** "TLS 1.2" for 0x0303, "0x7f1c" for a code it does not know. */
export function tlsVersionName(version: number): string {
  switch (version) {
    case TlsVersion.Ssl30:
      return "SSL 3.0";
    case TlsVersion.Tls10:
      return "TLS 1.0";
    case TlsVersion.Tls11:
      return "TLS 1.1";
    case TlsVersion.Tls12:
      return "TLS 1.2";
    case TlsVersion.Tls13:
      return "TLS 1.3";
    default:
      return `0x${version.toString(16).padStart(4, "0")}`;
  }
}
