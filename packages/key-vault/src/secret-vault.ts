/**
 * Where the key-broker keeps secrets: the NSS key-log lines of each client random, by its hex (lowercase,
 * 64 digits). Implementations keep values durably and encrypted at rest (`createNatsVault`), or in memory
 * for tests (`createMemoryVault`). `put` replaces the value; merging lines is the broker's job.
 */
import { BadClientRandomError } from "./errors.js";

export interface SecretVault {
  put(clientRandomHex: string, lines: string): Promise<void>;
  /** The lines of a client random, or undefined when none are kept (never stored, or expired). */
  get(clientRandomHex: string): Promise<string | undefined>;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Throws `BadClientRandomError` unless `hex` is 64 lowercase hex digits. */
export function checkClientRandomHex(hex: string): void {
  if (!HEX64.test(hex)) throw new BadClientRandomError(hex.length / 2);
}

export interface MemoryVaultOptions {
  /** Entries older than this (since their last put) are gone; default never. Time from `now`. */
  readonly ttlMs?: number;
  readonly now?: () => number;
}

/** A vault in process memory: for tests and one-process runs. */
export function createMemoryVault(options: MemoryVaultOptions = {}): SecretVault & { readonly size: number } {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { lines: string; at: number }>();
  return {
    async put(hex, lines) {
      checkClientRandomHex(hex);
      entries.set(hex, { lines, at: now() });
    },
    async get(hex) {
      checkClientRandomHex(hex);
      const e = entries.get(hex);
      if (!e) return undefined;
      if (options.ttlMs !== undefined && now() - e.at >= options.ttlMs) {
        entries.delete(hex);
        return undefined;
      }
      return e.lines;
    },
    get size() {
      return entries.size;
    },
  };
}
