/**
 * The TLS versions and cipher suites the simulator negotiates. The client offers exactly one suite, so the
 * suite of every connection is chosen by the plan; the server accepts them all. Suites are named by their IANA
 * names (RFC 8446 / RFC 5289 / RFC 7905); `openssl` is the name node's `ciphers` option takes.
 */

export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/** Which server certificate a suite needs: ECDHE_RSA suites sign with RSA, ECDHE_ECDSA ones with ECDSA. */
export type CertificateKind = "rsa" | "ecdsa";

export interface TlsSuiteProfile {
  readonly version: TlsVersion;
  /** IANA name, e.g. "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256". */
  readonly iana: string;
  /** OpenSSL name, e.g. "ECDHE-RSA-AES128-GCM-SHA256" (TLS 1.3 suites use the IANA name). */
  readonly openssl: string;
  /** Only for TLS 1.2: the certificate the suite needs. TLS 1.3 uses either (the plan picks one). */
  readonly certificate?: CertificateKind;
  /** CBC suites (MAC-then-encrypt or, when negotiated, encrypt-then-MAC per RFC 7366). */
  readonly cbc: boolean;
  /** Relative frequency in the simulated population. */
  readonly weight: number;
}

export const TLS_SUITES: readonly TlsSuiteProfile[] = [
  {
    version: "TLSv1.3",
    iana: "TLS_AES_128_GCM_SHA256",
    openssl: "TLS_AES_128_GCM_SHA256",
    cbc: false,
    weight: 30,
  },
  {
    version: "TLSv1.3",
    iana: "TLS_AES_256_GCM_SHA384",
    openssl: "TLS_AES_256_GCM_SHA384",
    cbc: false,
    weight: 22,
  },
  {
    version: "TLSv1.3",
    iana: "TLS_CHACHA20_POLY1305_SHA256",
    openssl: "TLS_CHACHA20_POLY1305_SHA256",
    cbc: false,
    weight: 10,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    openssl: "ECDHE-RSA-AES128-GCM-SHA256",
    certificate: "rsa",
    cbc: false,
    weight: 8,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    openssl: "ECDHE-RSA-AES256-GCM-SHA384",
    certificate: "rsa",
    cbc: false,
    weight: 6,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
    certificate: "ecdsa",
    cbc: false,
    weight: 5,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
    certificate: "ecdsa",
    cbc: false,
    weight: 3,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    openssl: "ECDHE-RSA-CHACHA20-POLY1305",
    certificate: "rsa",
    cbc: false,
    weight: 4,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
    certificate: "ecdsa",
    cbc: false,
    weight: 2,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    openssl: "ECDHE-RSA-AES128-SHA256",
    certificate: "rsa",
    cbc: true,
    weight: 3,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    openssl: "ECDHE-RSA-AES128-SHA",
    certificate: "rsa",
    cbc: true,
    weight: 3,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    openssl: "ECDHE-RSA-AES256-SHA384",
    certificate: "rsa",
    cbc: true,
    weight: 2,
  },
  {
    version: "TLSv1.2",
    iana: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    openssl: "ECDHE-ECDSA-AES256-SHA",
    certificate: "ecdsa",
    cbc: true,
    weight: 2,
  },
];

/** The server's `ciphers` string: every TLS 1.2 suite above (TLS 1.3 suites are enabled by default). */
export function serverCipherList(): string {
  return TLS_SUITES.filter((s) => s.version === "TLSv1.2")
    .map((s) => s.openssl)
    .join(":");
}
