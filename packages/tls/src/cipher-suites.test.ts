import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CIPHER_SUITES,
  CipherKind,
  cipherSuiteName,
  getCipherSuite,
  tlsVersionName,
} from "./cipher-suites.js";

describe("cipher suites - the table", () => {
  it("cipher suites - names follow the IANA pattern of their parameters", () => {
    const names = new Set<string>();
    for (const [code, s] of CIPHER_SUITES) {
      assert.equal(s.code, code);
      assert.ok(!names.has(s.name), `${s.name} once`);
      names.add(s.name);
      assert.match(s.name, /^TLS_/);
      assert.equal(s.tls13, code >> 8 === 0x13, s.name);
      if (s.tls13) assert.doesNotMatch(s.name, /_WITH_/);
      else assert.match(s.name, /_WITH_/);
      if (s.cipher.kind === CipherKind.Aead) assert.equal(s.mac, undefined, s.name);
      else assert.ok(s.mac, s.name);
      // The PRF hash is SHA-384 exactly when the name ends in SHA384.
      assert.equal(s.prfHash, s.name.endsWith("SHA384") ? "sha384" : "sha256", s.name);
      const cipherInName = s.cipher.name.toUpperCase().replace(/-/g, "_");
      assert.ok(s.name.includes(cipherInName), `${s.name} names ${s.cipher.name}`);
      assert.equal(s.cipher.tagLength === 8, s.name.includes("CCM_8"), s.name);
    }
  });

  it("cipher suites - lookups by code", () => {
    assert.equal(getCipherSuite(0xc02f)?.name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert.equal(getCipherSuite(0x1302)?.prfHash, "sha384");
    assert.equal(getCipherSuite(0x1305)?.cipher.tagLength, 8);
    assert.equal(getCipherSuite(0xc027)?.mac, "sha256");
    assert.equal(getCipherSuite(0xc013)?.mac, "sha1");
    assert.equal(getCipherSuite(0xcca8)?.cipher.fixedIvLength, 12);
    assert.equal(getCipherSuite(0xabcd), undefined);
    assert.equal(cipherSuiteName(0xabcd), "0xabcd");
    assert.equal(cipherSuiteName(0x0a0a), "0x0a0a");
  });

  it("cipher suites - supported means implemented here and available in node:crypto", () => {
    for (const s of CIPHER_SUITES.values()) {
      assert.equal(s.supported, s.cipher.kind !== CipherKind.Stream && s.cipher.available, s.name);
    }
    assert.equal(getCipherSuite(0x0005)?.supported, false, "RC4 is never decrypted");
    for (const code of [
      0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xc02f, 0xc030, 0xcca8, 0xc027, 0xc013, 0xc0ae,
    ]) {
      assert.equal(getCipherSuite(code)?.supported, true, cipherSuiteName(code));
    }
  });

  it("cipher suites - version names", () => {
    assert.deepEqual([0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x7f1c].map(tlsVersionName), [
      "SSL 3.0",
      "TLS 1.0",
      "TLS 1.1",
      "TLS 1.2",
      "TLS 1.3",
      "0x7f1c",
    ]);
  });
});
