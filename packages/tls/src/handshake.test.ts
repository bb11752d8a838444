import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  HandshakeReassembler,
  HELLO_RETRY_REQUEST_RANDOM,
  parseClientHello,
  parseEncryptedExtensions,
  parseServerHello,
} from "./handshake.js";
import * as V from "./rfc8448.js";
import {
  clientHelloBody,
  encryptedExtensionsBody,
  ext,
  handshakeMessage,
  pattern,
  serverHelloBody,
} from "./test-records.js";

describe("handshake - hello parsing", () => {
  it("handshake - RFC 8448 ClientHello: random, suites, SNI, versions, key share", () => {
    const ch = parseClientHello(V.CLIENT_HELLO_RECORD.subarray(9))!;
    assert.deepEqual(ch.random, V.CLIENT_RANDOM);
    assert.equal(ch.legacyVersion, 0x0303);
    assert.deepEqual(ch.sessionId, new Uint8Array(0));
    assert.deepEqual(ch.cipherSuites, [0x1301, 0x1303, 0x1302]);
    assert.equal(ch.serverName, "server");
    assert.deepEqual(ch.supportedVersions, [0x0304]);
    assert.deepEqual(ch.keyShareGroups, [0x001d]);
    assert.deepEqual(ch.alpn, []);
    assert.equal(ch.extendedMasterSecret, false);
    assert.equal(ch.earlyData, false);
  });

  it("handshake - RFC 8448 ServerHello: TLS 1.3 via supported_versions, suite, group", () => {
    const sh = parseServerHello(V.SERVER_HELLO_RECORD.subarray(9))!;
    assert.equal(sh.legacyVersion, 0x0303);
    assert.equal(sh.version, 0x0304);
    assert.equal(sh.cipherSuite, 0x1301);
    assert.equal(sh.keyShareGroup, 0x001d);
    assert.equal(sh.helloRetryRequest, false);
    assert.equal(sh.preSharedKey, false);
  });

  it("handshake - HelloRetryRequest is recognised by its random", () => {
    const hrr = parseServerHello(
      serverHelloBody({
        random: HELLO_RETRY_REQUEST_RANDOM,
        suite: 0x1302,
        extensions: [ext.serverVersion(0x0304), ext.hrrKeyShare(0x0017)],
      }),
    )!;
    assert.equal(hrr.helloRetryRequest, true);
    assert.equal(hrr.version, 0x0304);
    assert.equal(hrr.keyShareGroup, 0x0017);
  });

  it("handshake - TLS 1.2 hellos: ALPN, extended_master_secret, encrypt_then_mac, session id, early_data", () => {
    const ch = parseClientHello(
      clientHelloBody({
        random: pattern(32),
        sessionId: pattern(32, 3),
        suites: [0xc02f, 0xc027],
        extensions: [
          ext.serverName("example.com"),
          ext.alpn("h2", "http/1.1"),
          ext.empty(23),
          ext.empty(22),
          ext.empty(42),
          ext.clientVersions(0x0304, 0x0303),
          ext.clientKeyShare(0x001d, 0x0017),
        ],
      }),
    )!;
    assert.equal(ch.serverName, "example.com");
    assert.deepEqual(ch.alpn, ["h2", "http/1.1"]);
    assert.equal(ch.extendedMasterSecret, true);
    assert.equal(ch.encryptThenMac, true);
    assert.equal(ch.earlyData, true);
    assert.deepEqual(ch.sessionId, pattern(32, 3));
    assert.deepEqual(ch.supportedVersions, [0x0304, 0x0303]);
    assert.deepEqual(ch.keyShareGroups, [0x001d, 0x0017]);
    const sh = parseServerHello(
      serverHelloBody({
        random: pattern(32, 2),
        suite: 0xc027,
        extensions: [ext.alpn("h2"), ext.empty(23), ext.empty(22)],
      }),
    )!;
    assert.equal(sh.version, 0x0303);
    assert.equal(sh.alpn, "h2");
    assert.equal(sh.extendedMasterSecret, true);
    assert.equal(sh.encryptThenMac, true);
  });

  it("handshake - hellos without extensions (TLS 1.0 style) parse", () => {
    assert.deepEqual(
      parseClientHello(clientHelloBody({ random: pattern(32), suites: [0x002f], version: 0x0301 }))
        ?.extensions,
      [],
    );
    assert.equal(
      parseServerHello(serverHelloBody({ random: pattern(32), suite: 0x002f, version: 0x0301 }))?.version,
      0x0301,
    );
  });

  it("handshake - EncryptedExtensions: ALPN and early_data", () => {
    assert.deepEqual(parseEncryptedExtensions(encryptedExtensionsBody([ext.alpn("h2"), ext.empty(42)])), {
      alpn: "h2",
      earlyData: true,
    });
    assert.deepEqual(parseEncryptedExtensions(V.ENCRYPTED_EXTENSIONS.subarray(4)), {
      alpn: undefined,
      earlyData: false,
    });
  });

  it("handshake - every truncation of a hello is undefined, never a throw", () => {
    const ch = V.CLIENT_HELLO_RECORD.subarray(9);
    const sh = V.SERVER_HELLO_RECORD.subarray(9);
    for (let n = 0; n < ch.length; n++) {
      // A ClientHello cut right after compression methods is a valid extension-less hello.
      const parsed = parseClientHello(ch.subarray(0, n));
      if (n !== 2 + 32 + 1 + 8 + 2) assert.equal(parsed, undefined, `ClientHello cut at ${n}`);
    }
    for (let n = 0; n < sh.length; n++) {
      const parsed = parseServerHello(sh.subarray(0, n));
      if (n !== 2 + 32 + 1 + 3) assert.equal(parsed, undefined, `ServerHello cut at ${n}`);
    }
  });
});

describe("handshake - message reassembly", () => {
  const messages = [
    handshakeMessage(1, pattern(300, 1)),
    handshakeMessage(11, pattern(5000, 2)),
    handshakeMessage(20, pattern(32, 3)),
    handshakeMessage(2, new Uint8Array(0)),
  ];
  const stream = Buffer.concat(messages);
  const keep = new Set([1, 2, 20]);

  function collect(fragments: Uint8Array[], max = 1 << 17) {
    const r = new HandshakeReassembler(keep, max);
    const out: [number, number, string | undefined][] = [];
    for (const f of fragments) {
      r.push(f, (type, body, length) => out.push([type, length, body && Buffer.from(body).toString("hex")]));
    }
    return { out, partial: r.partial, oversized: r.oversizedMessages };
  }

  const want = [
    [1, 300, pattern(300, 1).toString("hex")],
    [11, 5000, undefined],
    [20, 32, pattern(32, 3).toString("hex")],
    [2, 0, ""],
  ];

  it("handshake - messages split across fragments at every offset are delivered whole", () => {
    assert.deepEqual(collect([stream]).out, want);
    for (let cut = 1; cut < stream.length; cut += 7) {
      assert.deepEqual(collect([stream.subarray(0, cut), stream.subarray(cut)]).out, want, `cut at ${cut}`);
    }
    const bytes = [...stream].map((b) => Uint8Array.of(b));
    assert.deepEqual(collect(bytes).out, want, "one byte per fragment");
  });

  it("handshake - a kept message above the cap is skipped unbuffered and counted", () => {
    const { out, oversized } = collect([stream.subarray(0, 100), stream.subarray(100)], 100);
    assert.deepEqual(out[0], [1, 300, undefined]);
    assert.equal(oversized, 1);
  });

  it("handshake - reset drops a partial message", () => {
    const r = new HandshakeReassembler(keep, 1000);
    r.push(stream.subarray(0, 10), () => assert.fail("no message yet"));
    assert.equal(r.partial, true);
    r.reset();
    assert.equal(r.partial, false);
    const got: number[] = [];
    r.push(messages[2]!, (type) => got.push(type));
    assert.deepEqual(got, [20]);
  });
});
