/**
 * Where the key-log watcher keeps its cursor (the last key it read) between runs: KV `ctap_cursors` under
 * `keybroker.<run>` in the mesh, memory in tests.
 */
import { BucketName, type Bus, ensureKv, getJson, type KV, putJson } from "@cloudtap/bus";
import { VaultUnavailableError } from "./errors.js";

export interface CursorStore {
  load(): Promise<string | undefined>;
  save(key: string): Promise<void>;
}

export function createMemoryCursorStore(
  initial?: string,
): CursorStore & { readonly value: string | undefined } {
  let value = initial;
  return {
    load: async () => value,
    save: async (key) => {
      value = key;
    },
    get value() {
      return value;
    },
  };
}

/** The KV key of the key-broker's cursor for a run. */
export function keyBrokerCursorName(run: string): string {
  return `keybroker.${run}`;
}

export function createKvCursorStore(kv: KV, name: string): CursorStore {
  return {
    async load() {
      try {
        return (await getJson<{ key?: string }>(kv, name))?.key;
      } catch (err) {
        throw new VaultUnavailableError("cursor load", err);
      }
    },
    async save(key) {
      try {
        await putJson(kv, name, { key });
      } catch (err) {
        throw new VaultUnavailableError("cursor save", err);
      }
    },
  };
}

export async function openKvCursorStore(js: Bus["js"], run: string): Promise<CursorStore> {
  return createKvCursorStore(await ensureKv(js, BucketName.Cursors), keyBrokerCursorName(run));
}
