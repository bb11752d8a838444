import { inflateKeyLog, isKeyLogKey } from "@cloudtap/fetch";
import type { ObjectStore } from "@cloudtap/object-store";
import { dataPrefix, keysPrefix } from "@cloudtap/tap-format";
import { Inventory, type InventoryReport } from "./inventory.js";

export interface InspectStoreOptions {
  /** Key prefix the tapper writes under (default: none). */
  readonly prefix?: string;
  /** Where key logs live, when not beside the data. */
  readonly keyStore?: ObjectStore;
  /** Called after each blob with the number done so far. */
  readonly onProgress?: (blobsDone: number) => void;
  readonly signal?: AbortSignal;
}

/** Inventories every data blob (and key log) of a store, in key order. */
export async function inspectStore(
  store: ObjectStore,
  options: InspectStoreOptions = {},
): Promise<InventoryReport> {
  const inv = new Inventory();
  const prefix = options.prefix ?? "";
  let done = 0;
  for await (const obj of store.list(dataPrefix(prefix), options.signal ? { signal: options.signal } : {})) {
    if (!obj.key.endsWith(".ctap")) continue;
    await inv.addBlob(obj.key, store.read(obj.key, options.signal ? { signal: options.signal } : {}));
    options.onProgress?.(++done);
  }
  const keyStore = options.keyStore ?? store;
  for await (const obj of keyStore.list(keysPrefix(prefix))) {
    if (!isKeyLogKey(obj.key)) continue;
    try {
      const bytes = await inflateKeyLog(obj.key, await keyStore.readBytes(obj.key));
      inv.addKeyLog(obj.key, bytes);
    } catch (err) {
      inv.problem("read-failed", obj.key, err instanceof Error ? err.message : String(err));
    }
  }
  return inv.report();
}

/** Inventories one blob given as a byte stream (a file on disk, say). */
export async function inspectBlob(name: string, source: AsyncIterable<Uint8Array>): Promise<InventoryReport> {
  const inv = new Inventory();
  await inv.addBlob(name, source);
  return inv.report();
}
