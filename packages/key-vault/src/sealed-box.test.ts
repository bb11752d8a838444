import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyVaultErrorCode, UnsealError } from "./errors.js";
import { createSealedBox, SEALED_OVERHEAD_BYTES } from "./sealed-box.js";

const key = new Uint8Array(32).fill(7);
const name = "ab".repeat(32);
const text = new TextEncoder().encode("CLIENT_RANDOM ... secret\n");

test("key-vault - sealed box: round trip, fresh nonce, nothing in the clear", () => {
  const box = createSealedBox(key);
  const a = box.seal(name, text);
  const b = box.seal(name, text);
  assert.equal(a.length, text.length + SEALED_OVERHEAD_BYTES);
  assert.notDeepEqual(a, b);
  assert.ok(!Buffer.from(a).includes(Buffer.from("secret")));
  assert.deepEqual(new Uint8Array(box.open(name, a)), text);
});

test("key-vault - sealed box: another name, another key, or a flipped bit does not open", () => {
  const box = createSealedBox(key);
  const sealed = box.seal(name, text);
  assert.throws(() => box.open("cd".repeat(32), sealed), UnsealError);
  assert.throws(() => createSealedBox(new Uint8Array(32).fill(8)).open(name, sealed), UnsealError);
  for (const at of [0, 5, sealed.length - 1, 20]) {
    const bad = Uint8Array.from(sealed);
    bad[at]! ^= 1;
    assert.throws(() => box.open(name, bad), UnsealError);
  }
  assert.throws(() => box.open(name, sealed.subarray(0, 10)), UnsealError);
  assert.throws(
    () => createSealedBox(new Uint8Array(16)),
    (err: unknown) => {
      return (err as { code?: string }).code === KeyVaultErrorCode.BadVaultKey;
    },
  );
});
