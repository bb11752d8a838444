/**
 * A store that connects on first use: `openStore` stays synchronous while a remote backend imports its SDK,
 * reads its credentials file and builds its client only when the store is first listed, read or written.
 * A failure to connect (an unreadable credentials file, an SDK that does not load) is thrown by that first
 * call, and by every later one.
 */
import type {
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  ReadBytesOptions,
  ReadOptions,
} from "./object-store.js";

export function createLazyStore(url: string, connect: () => Promise<ObjectStore>): ObjectStore {
  let connected: Promise<ObjectStore> | undefined;
  const store = () => {
    connected ??= connect();
    return connected;
  };
  return {
    url,
    listPage: async (prefix: string, options?: ListOptions): Promise<ListPage> =>
      (await store()).listPage(prefix, options),
    list: (prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> => ({
      async *[Symbol.asyncIterator]() {
        yield* (await store()).list(prefix, options);
      },
    }),
    read: (key: string, options?: ReadOptions): AsyncIterable<Uint8Array> => ({
      async *[Symbol.asyncIterator]() {
        yield* (await store()).read(key, options);
      },
    }),
    readBytes: async (key: string, options?: ReadBytesOptions) => (await store()).readBytes(key, options),
    write: async (key, body, options) => (await store()).write(key, body, options),
    delete: async (key: string) => (await store()).delete(key),
    stat: async (key: string) => (await store()).stat(key),
  };
}
