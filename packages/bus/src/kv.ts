/**
 * KV buckets (ctap_cursors, ctap_blob_state, ctap_keys): created on first use, opened afterwards. A TTL is
 * the bucket's max age: entries older than it disappear (key material of ctap_keys, 24 h by default).
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { InvalidBusNameError } from "./errors.js";

export type { KV };

export interface EnsureKvOptions {
  /** Max age of an entry; default none. */
  readonly ttlMs?: number;
  /** Values kept per key; default 1. */
  readonly history?: number;
}

const BUCKET_RE = /^[A-Za-z0-9_-]+$/;

export async function ensureKv(
  js: JetStreamClient,
  name: string,
  options: EnsureKvOptions = {},
): Promise<KV> {
  if (!BUCKET_RE.test(name)) throw new InvalidBusNameError("KV bucket name", name);
  return new Kvm(js).create(name, {
    history: options.history ?? 1,
    ...(options.ttlMs === undefined ? {} : { ttl: options.ttlMs }),
  });
}

/** A KV value as UTF-8 JSON; undefined when the key is absent or deleted. */
export async function getJson<T>(kv: KV, key: string): Promise<T | undefined> {
  const e = await kv.get(key);
  if (!e || e.operation !== "PUT" || e.value.length === 0) return undefined;
  return JSON.parse(new TextDecoder().decode(e.value)) as T;
}

export async function putJson(kv: KV, key: string, value: unknown): Promise<number> {
  return kv.put(key, new TextEncoder().encode(JSON.stringify(value)));
}
