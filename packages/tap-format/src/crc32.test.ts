import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { crc32 as zlibCrc32 } from "node:zlib";
import { crc32, crc32Implementation, crc32Short } from "./crc32.js";

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
