/**
 * The messages between `openStoreOnThread` (store-thread.ts) and its worker (store-thread-worker.ts). Every
 * call has an `id`; the worker answers it once (`listed`, `stat`, `bytes`, `error`) or, for a streamed read,
 * with chunks up to its credit, then `end` or `error`.
 */
import type { ByteRange, ListPage, ObjectInfo, SerializedError } from "@cloudtap/object-store";

/** What the worker opens: `openStore(url, options)` with the cloud schemes registered. */
export interface StoreThreadInit {
  readonly url: string;
  readonly credentialsFile?: string | undefined;
  readonly retry?:
    | {
        readonly attempts: number;
        readonly baseDelayMs: number;
        readonly maxDelayMs: number;
        readonly budgetMs: number;
        readonly callTimeoutMs: number;
      }
    | undefined;
}

/** A view's place: `length` bytes of `buffer` from `offset`. */
export interface BytesInto {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly offset: number;
  readonly length: number;
}

/** Chunks of a streamed read the worker sends before it waits for `more`. */
export const STREAM_CREDIT = 8;

export type ToStoreThread =
  | {
      readonly t: "list";
      readonly id: number;
      readonly prefix: string;
      readonly startAfter?: string | undefined;
      readonly pageSize?: number | undefined;
    }
  | { readonly t: "stat"; readonly id: number; readonly key: string }
  /**
   * A whole read, answered with `bytes`. `into`: the caller's buffer for the bytes (an `ArrayBuffer` is
   * transferred here and back, a `SharedArrayBuffer` written in place), used when the object fits.
   */
  | {
      readonly t: "bytes";
      readonly id: number;
      readonly key: string;
      readonly range?: ByteRange | undefined;
      readonly sizeHint?: number | undefined;
      readonly into?: BytesInto | undefined;
    }
  | { readonly t: "read"; readonly id: number; readonly key: string; readonly range?: ByteRange | undefined }
  /** The reader took `STREAM_CREDIT` more chunks' room. */
  | { readonly t: "more"; readonly id: number }
  /** The caller gave up on call `id` (abort, or a stream left early). */
  | { readonly t: "cancel"; readonly id: number }
  /** A buffer of a `bytes` answer, copied out and given back for the next whole read. */
  | { readonly t: "spare"; readonly buffer: ArrayBuffer };

export type FromStoreThread =
  | { readonly t: "listed"; readonly id: number; readonly page: ListPage }
  | { readonly t: "skipped"; readonly id: number; readonly key: string; readonly why: string }
  | { readonly t: "stat"; readonly id: number; readonly info: ObjectInfo | undefined }
  /**
   * The bytes of a whole read: `length` bytes of `buffer` from `offset`; `inPlace`: in the request's `into`
   * (its buffer given back), else in a buffer of the thread's own (transferred).
   */
  | {
      readonly t: "bytes";
      readonly id: number;
      readonly buffer: ArrayBuffer | SharedArrayBuffer;
      readonly offset: number;
      readonly length: number;
      readonly inPlace: boolean;
    }
  | { readonly t: "chunk"; readonly id: number; readonly chunk: Uint8Array }
  | { readonly t: "end"; readonly id: number }
  | { readonly t: "error"; readonly id: number; readonly error: SerializedError };
