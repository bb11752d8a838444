/**
 * A source store on a thread of its own. A cloud store's SDK does real work per byte on the thread that
 * calls it (HTTP parsing, streams, checksums, the XML or JSON of listings): on the stitch's thread that work
 * and the stitching add up instead of overlapping, so a stitch from a store took about the download plus
 * the directory run. `openStoreOnThread` opens the store in a worker thread and gives back an `ObjectStore`
 * whose every call goes there: this thread never loads the SDK, and a whole read arrives as a transferred
 * buffer (no copy), copied once into the caller's `allocate` when it gives one (the read-ahead's pool) and
 * the worker's buffer given back for the next read.
 *
 * - Read-only, as every source store is: `write` and `delete` throw `ReadOnlyStoreError` here.
 * - Errors are the store's own classes with their fields (`reviveError`): `isObjectNotFound`, the
 *   permission named, the store URL and the credentials file in the message.
 * - A streamed read (`read`) comes in chunks with flow control (`STREAM_CREDIT` chunks ahead of the reader);
 *   leaving it early or aborting cancels it in the worker.
 * - The thread keeps the process alive only while a call is in progress; `close()` ends it.
 * - The thread failing (it cannot start, or exits) fails every call in progress and every later one with
 *   `StoreThreadError`, which a stitch reports per blob like any read failure.
 * - An object larger than its listed size (it changed since the listing) is read into a buffer of the
 *   thread's and copied into a second `allocate`: the lent buffer is not given back (as without the thread,
 *   the remote store's first buffer is not).
 */
import type { Worker } from "node:worker_threads";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import {
  expectedReadLength,
  type ListOptions,
  type ListPage,
  listAllPages,
  type ObjectInfo,
  type ObjectStore,
  openStore,
  type ReadBytesOptions,
  ReadOnlyStoreError,
  type ReadOptions,
  type RetryPolicy,
  reviveError,
} from "@cloudtap/object-store";
import { StoreThreadError } from "./errors.js";
import {
  type BytesInto,
  type FromStoreThread,
  STREAM_CREDIT,
  type StoreThreadInit,
  type ToStoreThread,
} from "./store-thread-protocol.js";
import { startWorker } from "./thread-entry.js";

export interface StoreOnThread extends ObjectStore {
  /** Ends the thread: calls in progress fail with `StoreThreadError`. */
  close(): Promise<void>;
}

export interface StoreOnThreadOptions {
  readonly credentialsFile?: string | undefined;
  readonly retry?: RetryPolicy | undefined;
}

interface Call {
  readonly settle: (m: FromStoreThread) => void;
  readonly fail: (err: Error) => void;
}

/** Opens `url` (any registered scheme; meant for cloud stores) read-only on a worker thread. */
export function openStoreOnThread(url: string, options: StoreOnThreadOptions = {}): StoreOnThread {
  registerCloudStores();
  // Checks the URL now, as `openStore` does, and names the store as it would; connects nothing.
  const named = openStore(url, { credentialsFile: options.credentialsFile, readOnly: true }).url;
  const init: StoreThreadInit = {
    url,
    credentialsFile: options.credentialsFile,
    ...(options.retry ? { retry: { ...options.retry } } : {}),
  };
  let worker: Worker | undefined;
  let failure: Error | undefined;
  let nextId = 1;
  const calls = new Map<number, Call>();

  const failAll = (err: Error) => {
    failure ??= err;
    for (const c of calls.values()) c.fail(failure);
    calls.clear();
  };
  const thread = (): Worker => {
    if (worker) return worker;
    const w = startWorker("./store-thread-worker.ts", "store-thread.mjs", { workerData: init });
    w.unref();
    w.on("message", (m: FromStoreThread) => calls.get(m.id)?.settle(m));
    w.on("error", (err) => failAll(new StoreThreadError(named, err.message, { cause: err })));
    // A message that cannot be read leaves its call unanswered: every call fails rather than waits.
    w.on("messageerror", (err) =>
      failAll(new StoreThreadError(named, `a message did not arrive: ${err.message}`)),
    );
    w.on("exit", (code) => failAll(new StoreThreadError(named, `the thread exited (code ${code})`)));
    worker = w;
    return w;
  };
  const post = (m: ToStoreThread, transfer: ArrayBuffer[] = []) => thread().postMessage(m, transfer);
  /** Registers call `id`: the thread keeps the process alive while any call is open. */
  const open = (id: number, call: Call) => {
    if (failure) throw failure;
    if (calls.size === 0) thread().ref();
    calls.set(id, call);
  };
  const closeCall = (id: number) => {
    if (calls.delete(id) && calls.size === 0) worker?.unref();
  };

  /** One request, one answer (`pick` turns it into the result; `error` rejects). */
  const request = <T>(
    m: ToStoreThread & { readonly id: number },
    pick: (answer: FromStoreThread) => T,
    signal?: AbortSignal,
    onOther?: (answer: FromStoreThread) => void,
    transfer: ArrayBuffer[] = [],
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      signal?.throwIfAborted();
      const { id } = m;
      const onAbort = () => {
        closeCall(id);
        worker?.postMessage({ t: "cancel", id } satisfies ToStoreThread);
        reject(signal!.reason);
      };
      open(id, {
        settle: (a) => {
          if (a.t === "skipped") {
            onOther?.(a);
            return;
          }
          closeCall(id);
          signal?.removeEventListener("abort", onAbort);
          if (a.t === "error") reject(reviveError(a.error));
          else
            try {
              resolve(pick(a));
            } catch (err) {
              reject(err);
            }
        },
        fail: (err) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        post(m, transfer);
      } catch (err) {
        // Not sent (e.g. a buffer the runtime refuses to transfer): the call is over, nothing holds the thread.
        closeCall(id);
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      }
    });

  const listPage = (prefix: string, o: ListOptions = {}): Promise<ListPage> =>
    request(
      { t: "list", id: nextId++, prefix, startAfter: o.startAfter, pageSize: o.pageSize },
      (a) => {
        if (a.t !== "listed") throw new StoreThreadError(named, `answered ${a.t} to a listing`);
        return a.page;
      },
      o.signal,
      (a) => {
        if (a.t === "skipped") o.onSkipped?.(a.key, a.why);
      },
    );

  const readBytes = (key: string, o: ReadBytesOptions = {}): Promise<Uint8Array> => {
    // With the listed size, the caller's buffer goes to the thread and comes back filled: no copy here.
    const expected = expectedReadLength(o);
    const view = o.allocate && expected !== undefined ? o.allocate(expected) : undefined;
    const into = view ? placeOf(view) : undefined;
    return request(
      { t: "bytes", id: nextId++, key, range: o.range, sizeHint: o.sizeHint, into },
      (a) => {
        if (a.t !== "bytes") throw new StoreThreadError(named, `answered ${a.t} to a read`);
        const got = new Uint8Array(a.buffer, a.offset, a.length);
        if (a.inPlace && view && into?.buffer instanceof ArrayBuffer && into.buffer.byteLength !== 0) {
          // postMessage copies a buffer it cannot transfer (one of Node's pooled small buffers): the bytes
          // came back in the copy, and go into the caller's.
          view.set(got);
          return view.subarray(0, a.length);
        }
        if (a.inPlace || !o.allocate) return got;
        // Not in the caller's buffer (it gave none, or the object is larger than listed): copied once.
        const copy = o.allocate(a.length).subarray(0, a.length);
        copy.set(got);
        if (a.buffer instanceof ArrayBuffer) post({ t: "spare", buffer: a.buffer }, [a.buffer]);
        return copy;
      },
      o.signal,
      undefined,
      into && into.buffer instanceof ArrayBuffer ? [into.buffer] : [],
    );
  };

  async function* read(key: string, o: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    o.signal?.throwIfAborted();
    const id = nextId++;
    const queue: Uint8Array[] = [];
    let ended = false;
    let error: Error | undefined;
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    open(id, {
      settle: (a) => {
        if (a.t === "chunk") queue.push(a.chunk);
        else if (a.t === "end") ended = true;
        else if (a.t === "error") error = reviveError(a.error);
        else error = new StoreThreadError(named, `answered ${a.t} to a streamed read`);
        if (a.t !== "chunk") closeCall(id);
        poke();
      },
      fail: (err) => {
        error = err;
        poke();
      },
    });
    const onAbort = () => {
      error = o.signal!.reason as Error;
      poke();
    };
    o.signal?.addEventListener("abort", onAbort, { once: true });
    let taken = 0;
    try {
      post({ t: "read", id, key, range: o.range });
      for (;;) {
        // Aborted: no more of what is queued.
        if (error && o.signal?.aborted) throw error;
        const chunk = queue.shift();
        if (chunk) {
          // Credit back by whole rounds: the worker stays up to STREAM_CREDIT chunks ahead of this reader.
          if (++taken % STREAM_CREDIT === 0) post({ t: "more", id });
          yield chunk;
          continue;
        }
        if (error) throw error;
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      // Still open: left early or aborted; the worker stops reading.
      if (calls.has(id)) worker?.postMessage({ t: "cancel", id } satisfies ToStoreThread);
      closeCall(id);
    }
  }

  return {
    url: named,
    listPage,
    list: (prefix, o) => listAllPages(listPage, prefix, o),
    read,
    readBytes,
    stat: (key) =>
      request({ t: "stat", id: nextId++, key }, (a): ObjectInfo | undefined => {
        if (a.t !== "stat") throw new StoreThreadError(named, `answered ${a.t} to a stat`);
        return a.info;
      }),
    write: async (key) => {
      throw new ReadOnlyStoreError(named, key, "write");
    },
    delete: async (key) => {
      throw new ReadOnlyStoreError(named, key, "delete");
    },
    close: async () => {
      const w = worker;
      failAll(new StoreThreadError(named, "the store was closed"));
      if (w) await w.terminate();
    },
  };
}

/** Where the thread can write a buffer from `allocate`: shared memory in place, an `ArrayBuffer` transferred. */
function placeOf(view: Uint8Array): BytesInto | undefined {
  const buffer = view.buffer;
  const shared = typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
  if (!shared && !(buffer instanceof ArrayBuffer)) return undefined;
  return { buffer, offset: view.byteOffset, length: view.length };
}
