import assert from "node:assert/strict";
import { createHmac, hkdfSync } from "node:crypto";
import { describe, it } from "node:test";
import { getCipherSuite, TlsVersion } from "./cipher-suites.js";
import { hexToBytes } from "./hex.js";
import {
  deriveTls12KeyBlock,
  deriveTls13TrafficKeys,
  hkdfExpand,
  hkdfExpandLabel,
  nextTrafficSecret,
  tlsPrf,
} from "./key-schedule.js";
import * as V from "./rfc8448.js";

const AES128GCM_SHA256 = getCipherSuite(0x1301)!;

describe("key schedule - TLS 1.3 (RFC 8448 section 3)", () => {
  it("key schedule - derives the client and server handshake traffic secrets from the handshake secret", () => {
    assert.deepEqual(
      hkdfExpandLabel("sha256", V.HANDSHAKE_SECRET, "c hs traffic", V.HELLO_HASH, 32),
      V.CLIENT_HANDSHAKE_TRAFFIC_SECRET,
    );
    assert.deepEqual(
      hkdfExpandLabel("sha256", V.HANDSHAKE_SECRET, "s hs traffic", V.HELLO_HASH, 32),
      V.SERVER_HANDSHAKE_TRAFFIC_SECRET,
    );
  });

  const table = [
    ["server handshake", V.SERVER_HANDSHAKE_TRAFFIC_SECRET, V.SERVER_HANDSHAKE_KEY, V.SERVER_HANDSHAKE_IV],
    ["client handshake", V.CLIENT_HANDSHAKE_TRAFFIC_SECRET, V.CLIENT_HANDSHAKE_KEY, V.CLIENT_HANDSHAKE_IV],
    [
      "server application",
      V.SERVER_APPLICATION_TRAFFIC_SECRET,
      V.SERVER_APPLICATION_KEY,
      V.SERVER_APPLICATION_IV,
    ],
    [
      "client application",
      V.CLIENT_APPLICATION_TRAFFIC_SECRET,
      V.CLIENT_APPLICATION_KEY,
      V.CLIENT_APPLICATION_IV,
    ],
  ] as const;
  for (const [name, secret, key, iv] of table) {
    it(`key schedule - ${name} write key and IV`, () => {
      const keys = deriveTls13TrafficKeys(AES128GCM_SHA256, secret);
      assert.deepEqual(keys.key, key);
      assert.deepEqual(keys.iv, iv);
    });
  }

  it("key schedule - HKDF-Expand agrees with node's HKDF for multi-block output", () => {
    const ikm = new Uint8Array(40).fill(3);
    const salt = new Uint8Array(13).fill(9);
    const info = new TextEncoder().encode("some info");
    for (const hash of ["sha256", "sha384"] as const) {
      const prk = createHmac(hash, salt).update(ikm).digest();
      assert.deepEqual(
        Buffer.from(hkdfExpand(hash, prk, info, 200)),
        Buffer.from(hkdfSync(hash, ikm, salt, info, 200)),
      );
    }
  });

  it("key schedule - the KeyUpdate chain is HKDF-Expand-Label(secret, 'traffic upd', '', Hash.length)", () => {
    const next = nextTrafficSecret("sha384", new Uint8Array(48).fill(1));
    assert.equal(next.length, 48);
    assert.deepEqual(
      next,
      hkdfExpandLabel("sha384", new Uint8Array(48).fill(1), "traffic upd", new Uint8Array(0), 48),
    );
    // HkdfLabel = 00 30 | 11 "tls13 traffic upd" | 00
    const info = Buffer.concat([
      Buffer.from([0, 48, 17]),
      Buffer.from("tls13 traffic upd"),
      Buffer.from([0]),
    ]);
    assert.deepEqual(next, hkdfExpand("sha384", new Uint8Array(48).fill(1), info, 48));
  });
});

describe("key schedule - TLS 1.0-1.2 PRF and key block", () => {
  const secret = hexToBytes("9bbe436ba940f017b17652849a71db35")!;
  const seed = hexToBytes("a0ba9f936cda311827a6f796ffd5198c")!;

  it("key schedule - P_SHA256 gives the vector circulated on the TLS working group list", () => {
    const out = tlsPrf(TlsVersion.Tls12, "sha256", secret, "test label", seed, 100);
    assert.equal(
      Buffer.from(out).toString("hex"),
      "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66",
    );
  });

  // Expected outputs from OpenSSL 3.0: `openssl kdf -keylen N -kdfopt digest:D -kdfopt hexsecret:S
  // -kdfopt hexseed:<"test label" + seed> -binary TLS1-PRF`, with D = SHA2-384 and MD5-SHA1.
  it("key schedule - P_SHA384 agrees with OpenSSL's TLS1-PRF", () => {
    const out = tlsPrf(TlsVersion.Tls12, "sha384", secret, "test label", seed, 148);
    assert.equal(
      Buffer.from(out).toString("hex"),
      "dd88775cd827187b67a3f7652b5c13f715791cc46e0274a6d3fb16651103defc544cd8afb68369a219bb918b8b21ddb1764af0a70339e6dec085e574f655851ba692513203536bdfc3675e53768210f0a2389dd324311a440c7c30ef44b391d914c3b0c7c80f1cb5e134cf4253d859fa8a46e978360d095dd2fba0c18a1f4d7b4cf9f24667b5cb0adc5ab65df3a0dc627c9b73cc",
    );
  });

  it("key schedule - the TLS 1.0/1.1 PRF (MD5 XOR SHA-1) agrees with OpenSSL, even and odd secret lengths", () => {
    for (const version of [TlsVersion.Tls10, TlsVersion.Tls11]) {
      assert.equal(
        Buffer.from(tlsPrf(version, "sha256", secret, "test label", seed, 104)).toString("hex"),
        "661740e6f98bc901efd2738502a71c03f76dd2f86298549b1148eff06714cf0f6b7c532cd8c69f1530e0bb680eec34c495fa75a8bfcc9c335484c0d3d194ab6e32975903c50ebcdbe9d67c0591bdbd80dddcc36d33ccd58adf96caae173f48dc40f983e229370ab5",
      );
    }
    const odd = Uint8Array.from([...secret, 0xff]);
    assert.equal(
      Buffer.from(tlsPrf(TlsVersion.Tls10, "sha256", odd, "test label", seed, 40)).toString("hex"),
      "617270adf8c791af59bc8878a208b8aaad4f4238c514510b72be81f2119c71661f819001d49c9a30",
    );
  });

  it("key schedule - the key block is cut MAC keys, keys, IVs (client before server)", () => {
    const master = new Uint8Array(48).fill(5);
    const cr = new Uint8Array(32).fill(1);
    const sr = new Uint8Array(32).fill(2);
    const srCr = Uint8Array.from([...sr, ...cr]);
    const cases = [
      [0xc027, TlsVersion.Tls12, 32, 16, 0], // AES-128-CBC-SHA256: no IVs in TLS 1.2
      [0x002f, TlsVersion.Tls10, 20, 16, 16], // AES-128-CBC-SHA in TLS 1.0: IVs from the key block
      [0xc02f, TlsVersion.Tls12, 0, 16, 4], // AES-128-GCM: 4-byte salt
      [0xcca8, TlsVersion.Tls12, 0, 32, 12], // ChaCha20-Poly1305: 12-byte IV
    ] as const;
    for (const [code, version, mac, key, iv] of cases) {
      const suite = getCipherSuite(code)!;
      const block = deriveTls12KeyBlock(version, suite, master, cr, sr);
      const whole = tlsPrf(version, suite.prfHash, master, "key expansion", srCr, 2 * (mac + key + iv));
      const parts = [
        block.client.macKey,
        block.server.macKey,
        block.client.key,
        block.server.key,
        block.client.iv,
        block.server.iv,
      ];
      assert.deepEqual(
        parts.map((p) => p.length),
        [mac, mac, key, key, iv, iv],
        suite.name,
      );
      assert.deepEqual(Buffer.concat(parts), Buffer.from(whole), suite.name);
    }
  });
});
