/**
 * The store's own thread (see store-thread.ts): opens the store read-only, with the cloud schemes
 * registered, and answers the calls of the thread that opened it. Whole reads go into buffers given back
 * by that thread (a pool, so a run does not fault in fresh pages for every blob) and are transferred, not
 * copied; streamed chunks are transferred when they own their buffer.
 */
import { parentPort, workerData } from "node:worker_threads";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { openStore, serializeError } from "@cloudtap/object-store";
import {
  type FromStoreThread,
  STREAM_CREDIT,
  type StoreThreadInit,
  type ToStoreThread,
} from "./store-thread-protocol.js";

const port = parentPort;
if (!port) throw new Error("the store thread runs in a worker thread");
const init = workerData as StoreThreadInit;
registerCloudStores();
const store = openStore(init.url, {
  credentialsFile: init.credentialsFile,
  readOnly: true,
  ...(init.retry ? { retry: init.retry } : {}),
});

function send(m: FromStoreThread, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

/** Buffers of earlier whole reads, given back. */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 16;
/** The buffers `allocate` made: only these are transferred (a backend may answer in a buffer of its own). */
const ours = new WeakSet<ArrayBuffer>();
function allocate(size: number): Uint8Array {
  const at = spare.findIndex((b) => b.byteLength >= size);
  if (at >= 0) return new Uint8Array(spare.splice(at, 1)[0]!, 0, size);
  const buffer = new ArrayBuffer(size + (size >> 3));
  ours.add(buffer);
  return new Uint8Array(buffer, 0, size);
}

/** The calls in progress that can be given up: their abort, and a stream's wait for credit. */
const running = new Map<number, { readonly abort: AbortController; credit: number; wake?: () => void }>();

function begin(id: number) {
  const entry: { abort: AbortController; credit: number; wake?: () => void } = {
    abort: new AbortController(),
    credit: STREAM_CREDIT,
  };
  running.set(id, entry);
  return entry;
}

async function answer(id: number, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const entry = begin(id);
  try {
    await work(entry.abort.signal);
  } catch (err) {
    if (!entry.abort.signal.aborted) send({ t: "error", id, error: serializeError(err) });
  } finally {
    running.delete(id);
  }
}

async function stream(m: Extract<ToStoreThread, { t: "read" }>): Promise<void> {
  const { id } = m;
  await answer(id, async (signal) => {
    const entry = running.get(id)!;
    for await (const c of store.read(m.key, { ...(m.range ? { range: m.range } : {}), signal })) {
      while (entry.credit === 0 && !signal.aborted)
        await new Promise<void>((resolve) => {
          entry.wake = resolve;
        });
      if (signal.aborted) return;
      entry.credit--;
      const owns =
        c.buffer instanceof ArrayBuffer && c.byteOffset === 0 && c.byteLength === c.buffer.byteLength;
      // A copy of its own (a Buffer's `slice` shares memory; transferring that would take its neighbours' bytes).
      const chunk = owns ? c : new Uint8Array(c);
      send({ t: "chunk", id, chunk }, [chunk.buffer as ArrayBuffer]);
    }
    if (!signal.aborted) send({ t: "end", id });
  });
}

port.on("messageerror", () => {
  // A call whose message cannot be read is not known here, and would never be answered: the thread ends
  // (in a worker, `process.exit` ends the thread), and the caller's side fails every call on its exit.
  process.exit(1);
});
port.on("message", (m: ToStoreThread) => {
  switch (m.t) {
    case "list":
      void answer(m.id, async (signal) => {
        const page = await store.listPage(m.prefix, {
          ...(m.startAfter === undefined ? {} : { startAfter: m.startAfter }),
          ...(m.pageSize === undefined ? {} : { pageSize: m.pageSize }),
          signal,
          onSkipped: (key, why) => send({ t: "skipped", id: m.id, key, why }),
        });
        send({ t: "listed", id: m.id, page });
      });
      return;
    case "stat":
      void answer(m.id, async () => {
        send({ t: "stat", id: m.id, info: await store.stat(m.key) });
      });
      return;
    case "bytes":
      void answer(m.id, async (signal) => {
        const into = m.into;
        let inPlace = false;
        const bytes = await store.readBytes(m.key, {
          ...(m.range ? { range: m.range } : {}),
          ...(m.sizeHint === undefined ? {} : { sizeHint: m.sizeHint }),
          signal,
          allocate: (size) => {
            if (into && !inPlace && size <= into.length) {
              inPlace = true;
              return new Uint8Array(into.buffer, into.offset, size);
            }
            inPlace = false;
            return allocate(size);
          },
        });
        const given = into !== undefined && bytes.buffer === into.buffer;
        const mine = given || (bytes.buffer instanceof ArrayBuffer && ours.has(bytes.buffer));
        const out = mine ? bytes : new Uint8Array(bytes);
        const buffer = out.buffer as ArrayBuffer | SharedArrayBuffer;
        send(
          { t: "bytes", id: m.id, buffer, offset: out.byteOffset, length: out.length, inPlace: given },
          buffer instanceof ArrayBuffer ? [buffer] : [],
        );
      });
      return;
    case "read":
      void stream(m);
      return;
    case "more": {
      const entry = running.get(m.id);
      if (!entry) return;
      entry.credit += STREAM_CREDIT;
      entry.wake?.();
      return;
    }
    case "cancel": {
      const entry = running.get(m.id);
      if (!entry) return;
      entry.abort.abort();
      entry.wake?.();
      return;
    }
    case "spare":
      ours.add(m.buffer);
      if (spare.length < MAX_SPARE) spare.push(m.buffer);
      return;
  }
});
