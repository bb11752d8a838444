import { createHash, type Hash } from "node:crypto";

/** Length and SHA-256 of a byte stream. */
export interface StreamDigest {
  readonly length: number;
  readonly sha256: string;
}

/** Counts and hashes a byte stream as it passes; `digest()` may be called more than once. */
export class ByteTally {
  private readonly hash: Hash = createHash("sha256");
  private total = 0;
  private final: StreamDigest | undefined;

  get length(): number {
    return this.total;
  }

  update(chunk: Uint8Array): void {
    if (this.final) throw new Error("ByteTally updated after digest()");
    this.hash.update(chunk);
    this.total += chunk.length;
  }

  digest(): StreamDigest {
    this.final ??= { length: this.total, sha256: this.hash.digest("hex") };
    return this.final;
  }
}
