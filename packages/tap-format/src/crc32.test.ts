import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { crc32 as zlibCrc32 } from "node:zlib";
import {
  crc32,
  crc32c,
  crc32cImplementation,
  crc32cJs,
  crc32cNativeTable,
  crc32Implementation,
  crc32Short,
} from "./crc32.js";

/** CRC-32C bit by bit, straight from the definition (reflected 0x82F63B78): the reference of the tests. */
function crc32cBitwise(bytes: Uint8Array, initial = 0): number {
  let c = ~initial >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (0x82f63b78 ^ (c >>> 1)) >>> 0 : c >>> 1;
  }
  return ~c >>> 0;
}

describe("tap-format - CRC-32", () => {
  it("the native CRC-32 was built at install and is in use (CLOUDTAP_CRC_NATIVE=0 tests zlib's)", (t) => {
    if (process.env["CLOUDTAP_CRC_NATIVE"] === "0") {
      t.skip("CLOUDTAP_CRC_NATIVE=0");
      return;
    }
    assert.equal(crc32Implementation, "native");
  });

  it("equals zlib's for every length 0..600 at any alignment, continued from any value, and for large buffers", () => {
    const big = randomBytes(1 << 20);
    for (let length = 0; length <= 600; length++) {
      for (const offset of [0, 1, 3, 7]) {
        const b = big.subarray(offset, offset + length);
        const initial = length % 5 === 0 ? 0 : Math.imul(length, 2654435761) >>> 0;
        assert.equal(crc32(b, initial), zlibCrc32(b, initial) >>> 0, `length ${length} offset ${offset}`);
      }
    }
    for (const length of [4096, 16384, 29_000, 65_536, 1 << 20]) {
      const b = big.subarray(0, length);
      assert.equal(crc32(b), zlibCrc32(b) >>> 0);
      assert.equal(crc32(b.subarray(1000), crc32(b.subarray(0, 1000))), crc32(b), "continuation");
    }
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926, "the check value");
    assert.equal(crc32Short(big, 5, 17), zlibCrc32(big.subarray(5, 17)) >>> 0);
  });
});

describe("tap-format - CRC-32C", () => {
  const implementations: [string, (b: Uint8Array, initial?: number) => number][] = [
    ["crc32c", crc32c],
    ["javascript", crc32cJs],
    ...(crc32cNativeTable ? [["native table", crc32cNativeTable] as [string, typeof crc32c]] : []),
  ];

  it("the native CRC-32C was built at install and uses SSE4.2 where the CPU has it (CLOUDTAP_CRC_NATIVE=0 tests the JavaScript one)", (t) => {
    if (process.env["CLOUDTAP_CRC_NATIVE"] === "0") {
      assert.match(crc32cImplementation, /^javascript/);
      t.skip("CLOUDTAP_CRC_NATIVE=0");
      return;
    }
    // The CPU's flags as Linux lists them (the addon is built on Linux only).
    const sse42 = process.arch === "x64" && /\bsse4_2\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
    assert.equal(crc32cImplementation, sse42 ? "native (sse4.2)" : "native (table)");
  });

  it("gives the check values of RFC 3720 (appendix B.4) and of the CRC catalogue", () => {
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    const iscsiRead = Uint8Array.from([
      0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0,
      0, 0x18, 0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
    ]);
    for (const [name, f] of implementations) {
      assert.equal(f(new Uint8Array(32)), 0x8a9136aa, `${name}: 32 bytes of zeros`);
      assert.equal(f(new Uint8Array(32).fill(0xff)), 0x62a8ab43, `${name}: 32 bytes of 0xFF`);
      assert.equal(f(ascending), 0x46dd794e, `${name}: 0..31`);
      assert.equal(f(descending), 0x113fdb5c, `${name}: 31..0`);
      assert.equal(f(iscsiRead), 0xd9963a56, `${name}: an iSCSI read command`);
      assert.equal(f(new TextEncoder().encode("123456789")), 0xe3069283, `${name}: the check value`);
      assert.equal(f(new Uint8Array(0)), 0, `${name}: nothing`);
    }
  });

  it("every implementation equals the bitwise definition for every length 0..600 at any alignment, continued from any value", () => {
    const big = randomBytes(4096);
    for (let length = 0; length <= 600; length++) {
      for (const offset of [0, 1, 3, 7]) {
        const b = big.subarray(offset, offset + length);
        const initial = length % 5 === 0 ? 0 : Math.imul(length, 2654435761) >>> 0;
        const expected = crc32cBitwise(b, initial);
        for (const [name, f] of implementations)
          assert.equal(f(b, initial), expected, `${name}: length ${length} offset ${offset}`);
      }
    }
  });

  it("the native and JavaScript ones agree over random buffers up to 1 MiB (the instruction path's three-stream blocks and their joins), and continue", () => {
    const big = randomBytes((1 << 20) + 16);
    // Around the three-stream block sizes (3 x 256 and 3 x 8192 bytes) and across several of them.
    const lengths = [
      767,
      768,
      769,
      1535,
      1536,
      24_575,
      24_576,
      24_577,
      24_576 + 768 + 13,
      65_536,
      100_003,
      1 << 20,
    ];
    for (const length of lengths) {
      for (const offset of [0, 5]) {
        const b = big.subarray(offset, offset + length);
        const expected = crc32cJs(b);
        for (const [name, f] of implementations) {
          assert.equal(f(b), expected, `${name}: length ${length} offset ${offset}`);
          const cut = Math.floor(length / 3);
          assert.equal(f(b.subarray(cut), f(b.subarray(0, cut))), expected, `${name}: continued at ${cut}`);
        }
      }
    }
    assert.equal(crc32cJs(big.subarray(0, 2000)), crc32cBitwise(big.subarray(0, 2000)));
  });

  it("rejects an initial value outside [0, 2^32) as crc32 does", () => {
    for (const [name, f] of implementations) {
      assert.throws(() => f(new Uint8Array(4), -1), RangeError, name);
      assert.throws(() => f(new Uint8Array(4), 2 ** 32), RangeError, name);
      assert.throws(() => f(new Uint8Array(4), 1.5), RangeError, name);
    }
  });
});
