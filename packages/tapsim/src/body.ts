/**
 * Deterministic HTTP bodies. A body is named by a `BodySpec` (length, content type, seed text) and generated
 * on demand in chunks, so a multi-megabyte response never sits in memory whole and both ends can agree on it
 * without sending the spec.
 */
import { createPrng } from "./prng.js";

export interface BodySpec {
  readonly length: number;
  readonly contentType: string;
  /** Seed text of the body's content. */
  readonly seed: string;
}

/** Bodies are produced in chunks of at most this many bytes. */
export const BODY_CHUNK_BYTES = 64 * 1024;

const TEXT_ALPHABET = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
);

function isText(contentType: string): boolean {
  return /json|text|xml|javascript|css/.test(contentType);
}

/**
 * The body's bytes, chunk by chunk. Text types are printable: JSON bodies are a JSON object padded to the exact
 * length with a string field; other text is base64url-like characters. Everything else is uniform bytes.
 */
export function* bodyChunks(spec: BodySpec): Generator<Uint8Array> {
  const prng = createPrng(spec.seed);
  const text = isText(spec.contentType);
  let prefix = new Uint8Array(0);
  let suffix = new Uint8Array(0);
  if (spec.contentType.includes("json")) {
    const head = new TextEncoder().encode(`{"id":"${prng.hex(8)}","data":"`);
    const tail = new TextEncoder().encode(`"}\n`);
    // Shorter bodies are plain text: the JSON frame would not fit.
    if (spec.length >= head.length + tail.length) {
      prefix = head;
      suffix = tail;
    }
  }
  let produced = 0;
  while (produced < spec.length) {
    const n = Math.min(BODY_CHUNK_BYTES, spec.length - produced);
    const chunk = new Uint8Array(n);
    prng.fill(chunk);
    if (text) {
      for (let i = 0; i < n; i++) chunk[i] = TEXT_ALPHABET[chunk[i]! & 63]!;
      // The JSON frame overwrites the first and last bytes of the body (both may fall in one chunk).
      if (produced < prefix.length)
        chunk.set(prefix.subarray(produced, Math.min(prefix.length, produced + n)), 0);
      const tailStart = spec.length - suffix.length;
      if (suffix.length > 0 && produced + n > tailStart) {
        const from = Math.max(tailStart, produced);
        chunk.set(suffix.subarray(from - tailStart, produced + n - tailStart), from - produced);
      }
    }
    produced += n;
    yield chunk;
  }
}

/** Whole body as one array (for small bodies and tests). */
export function bodyBytes(spec: BodySpec): Uint8Array {
  const out = new Uint8Array(spec.length);
  let p = 0;
  for (const c of bodyChunks(spec)) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}
