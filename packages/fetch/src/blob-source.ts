/**
 * A blob as the fetch side hands it on: a data blob or a key log, read when asked. Stores (through
 * `listBlobs`), worker threads (a shared buffer) and the mesh's chunk batches (a message body) all give
 * blobs this shape, so the decoding and stitching code never sees where the bytes came from.
 */
export interface BlobSource {
  /** The blob's name in reports (its object key or file name). */
  readonly key: string;
  /** A data blob (default) or a key log that lands in the stream of blobs. */
  readonly kind?: "data" | "keys";
  /** Size in bytes when known; blobs up to the read-ahead's `maxBytes` are read ahead whole. */
  readonly size?: number;
  read(): AsyncIterable<Uint8Array>;
  /**
   * The whole blob in one read, when the source can do that cheaply (used for read-ahead); `allocate` as in
   * @cloudtap/object-store's `readBytes`.
   */
  readBytes?(options?: { readonly allocate?: (size: number) => Uint8Array }): Promise<Uint8Array>;
}

/** Something wrong with one blob or key log: named, with where, so a report never hides a loss. */
export interface BlobProblem {
  readonly blob: string;
  /** The CtapError code ("checksum-mismatch", "truncated-frame", ...), "read-failed" or "key-log-*". */
  readonly kind: string;
  readonly message: string;
  /** The damage was inside one frame whose header was sound (only the job that selected the frame sees it). */
  readonly withinFrame?: boolean;
}
