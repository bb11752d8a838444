/**
 * AES-256-GCM sealing of vault values. A sealed value is
 *
 *   version (1 byte, 1) | nonce (12 random bytes) | ciphertext | tag (16 bytes)
 *
 * with the entry's name (its client random in hex) as additional data, so a value copied under another
 * name does not open. A fresh random nonce per seal; at the vault's write rates (one per client random)
 * the birthday bound of 96-bit nonces is far away.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { KeyVaultError, KeyVaultErrorCode, UnsealError } from "./errors.js";

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const SEALED_OVERHEAD_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

export interface SealedBox {
  seal(name: string, plaintext: Uint8Array): Uint8Array;
  /** Throws `UnsealError` when the value was not sealed under this key and name. */
  open(name: string, sealed: Uint8Array): Uint8Array;
}

export function createSealedBox(key: Uint8Array): SealedBox {
  if (key.length !== 32) {
    throw new KeyVaultError(KeyVaultErrorCode.BadVaultKey, `the vault key is 32 bytes, not ${key.length}`);
  }
  const secret = Buffer.from(key); // a private copy: the caller may wipe its own
  const aad = (name: string) => Buffer.from(`ctap_keys/v1/${name}`, "utf8");
  return {
    seal(name, plaintext) {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv("aes-256-gcm", secret, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad(name));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
    },
    open(name, sealed) {
      if (sealed.length < SEALED_OVERHEAD_BYTES) throw new UnsealError("too short");
      if (sealed[0] !== VERSION) throw new UnsealError(`unknown version ${sealed[0]}`);
      const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
      const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
      const tag = sealed.subarray(sealed.length - TAG_BYTES);
      try {
        const decipher = createDecipheriv("aes-256-gcm", secret, nonce, { authTagLength: TAG_BYTES });
        decipher.setAAD(aad(name));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(body), decipher.final()]);
      } catch (err) {
        throw new UnsealError("authentication failed (wrong key, or the value was altered)", { cause: err });
      }
    },
  };
}
