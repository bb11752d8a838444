/**
 * The durable vault: NATS KV bucket `ctap_keys`, one entry per client random (the key is its hex), the
 * value sealed with AES-256-GCM under the configured vault key. The bucket's max age is the TTL, so a key
 * nobody refreshed disappears from disk on its own. NATS sees only sealed bytes.
 */
import { BucketName, type Bus, ensureKv, type KV } from "@cloudtap/bus";
import { VaultUnavailableError } from "./errors.js";
import { createSealedBox } from "./sealed-box.js";
import { checkClientRandomHex, type SecretVault } from "./secret-vault.js";

export interface NatsVaultOptions {
  /** 32 bytes. */
  readonly key: Uint8Array;
  /** Max age of an entry (the bucket's max age). Default 24 h. */
  readonly ttlMs?: number;
  /** Default `ctap_keys`. */
  readonly bucket?: string;
}

export const DEFAULT_KEY_TTL_MS = 24 * 60 * 60 * 1000;

/** A vault over an open KV bucket (see `openNatsVault`). */
export function createNatsVault(kv: KV, key: Uint8Array): SecretVault {
  const box = createSealedBox(key);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return {
    async put(hex, lines) {
      checkClientRandomHex(hex);
      const sealed = box.seal(hex, encoder.encode(lines));
      try {
        await kv.put(hex, sealed);
      } catch (err) {
        throw new VaultUnavailableError("put", err);
      }
    },
    async get(hex) {
      checkClientRandomHex(hex);
      let entry: Awaited<ReturnType<KV["get"]>>;
      try {
        entry = await kv.get(hex);
      } catch (err) {
        throw new VaultUnavailableError("get", err);
      }
      if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
      return decoder.decode(box.open(hex, entry.value));
    },
  };
}

/**
 * Creates (or opens) the bucket with the TTL as its max age and returns the vault over it. An existing
 * bucket made with another TTL gets the configured one (opening alone would keep the old max age).
 */
export async function openNatsVault(
  bus: Pick<Bus, "js" | "jsm">,
  options: NatsVaultOptions,
): Promise<SecretVault> {
  createSealedBox(options.key); // a bad key fails before anything is created
  const bucket = options.bucket ?? BucketName.Keys;
  const ttlMs = options.ttlMs ?? DEFAULT_KEY_TTL_MS;
  let kv: KV;
  try {
    kv = await ensureKv(bus.js, bucket, { ttlMs });
    if ((await kv.status()).ttl !== ttlMs) {
      // A KV bucket is the stream KV_<bucket>; its max age is in nanoseconds.
      await bus.jsm.streams.update(`KV_${bucket}`, { max_age: ttlMs * 1_000_000 });
    }
  } catch (err) {
    throw new VaultUnavailableError(`open of bucket ${bucket}`, err);
  }
  return createNatsVault(kv, options.key);
}
