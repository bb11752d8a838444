/**
 * The store flags every command shares, and the one way the CLI opens a store: a URL of any registered
 * scheme (a directory path or file://, memory://, s3://, gs://, azblob://, https://<account>.blob.core.
 * windows.net) with its credentials file. `--credentials FILE` goes with the data store (`--source`,
 * `--out`, the inspected store), `--keys-credentials FILE` with the key store (`--keys`, `--keys-out`);
 * without a file a cloud store uses its SDK's environment and default chain. A source store is opened
 * read-only: reading needs list and get only, and nothing is ever written to or deleted from it.
 */
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import { openStoreOnThread } from "@cloudtap/stitch-workers";
import { parseSize } from "./units.js";
import { UsageError } from "./usage-error.js";

/** `parseArgs` options of the credential flags. */
export const STORE_CREDENTIAL_OPTIONS = {
  credentials: { type: "string" },
  "keys-credentials": { type: "string" },
} as const;

/** The credential flags as `values` of `parseArgs` hold them. */
export interface StoreCredentialValues {
  readonly credentials?: string | undefined;
  readonly "keys-credentials"?: string | undefined;
}

/** The help text of the store URLs and credential flags, one example per cloud. */
export const STORE_HELP = `  Stores: a directory (or file:// URL), or a cloud store, with a credentials file:
    s3://bucket/prefix --credentials aws.json          {"access_key_id","secret_access_key"[,"session_token","region"]}
      S3-compatible (MinIO, Ceph): s3://bucket/prefix?endpoint=http://host:9000&path_style=true[&region=R]
    gs://bucket/prefix --credentials service-account.json   a GCP service-account key file
    azblob://account/container/prefix --credentials azure.json   {"access_key"}, {"connection_string"} or
      {"sas_token"} (or the bare string); no container means "netskope"; also
      https://account.blob.core.windows.net/container/prefix; ?endpoint=URL for Azurite
  --credentials FILE is the data store's, --keys-credentials FILE the key store's (default: --credentials
  when both stores are of one scheme). Without a file: the SDK's environment and default chain
  (AWS_ACCESS_KEY_ID/AWS_PROFILE/instance roles, AWS_ENDPOINT_URL_S3; GOOGLE_APPLICATION_CREDENTIALS,
  STORAGE_EMULATOR_HOST, the metadata server; AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY,
  managed identity). Source stores need list and get only.`;

function schemeOf(url: string): string {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase() ?? "file";
}

function isLocal(url: string): boolean {
  const scheme = schemeOf(url);
  return scheme === "file" || scheme === "memory";
}

export interface OpenStoreFlags {
  readonly readOnly: boolean;
  /**
   * A cloud source store on a thread of its own (`openStoreOnThread`), so that its SDK's work overlaps with
   * the stitching; not for local stores (the file system's reads are off the thread already) nor when
   * CLOUDTAP_STORE_THREAD=0 (the benchmarks' comparison). The caller closes it (`closeStore`).
   */
  readonly thread?: boolean;
}

/** Opens one store by URL with its credentials file (cloud schemes registered first). */
export function openStoreWithCredentials(
  flag: string,
  url: string,
  credentialsFile: string | undefined,
  options: OpenStoreFlags,
): ObjectStore {
  registerCloudStores();
  if (credentialsFile !== undefined && isLocal(url))
    throw new UsageError(`${flag} ${url} is a local store: it takes no credentials file`);
  if (options.thread && options.readOnly && !isLocal(url) && process.env["CLOUDTAP_STORE_THREAD"] !== "0")
    return openStoreOnThread(url, { credentialsFile });
  return openStore(url, { credentialsFile, readOnly: options.readOnly });
}

/** Ends a store's own thread, if it has one. */
export async function closeStore(store: ObjectStore): Promise<void> {
  if ("close" in store && typeof store.close === "function") await (store.close as () => Promise<void>)();
}

export interface OpenedStores {
  readonly data: ObjectStore;
  /** The key store: its own URL and credentials, or the data store itself. */
  readonly keys: ObjectStore;
  /** Ends the stores' own threads (with `thread`); nothing for others. */
  close(): Promise<void>;
}

/**
 * The data store and the key store of a command. `readOnly` for sources (stitch, inspect); writers
 * (simulate, ingest) open theirs for writing.
 */
export function openDataAndKeyStores(
  flags: {
    readonly data: string;
    readonly keys?: string | undefined;
    readonly dataFlag: string;
    readonly keysFlag: string;
  },
  values: StoreCredentialValues,
  options: OpenStoreFlags,
): OpenedStores {
  if (flags.keys === undefined && values["keys-credentials"] !== undefined)
    throw new UsageError(
      `--keys-credentials goes with ${flags.keysFlag}: without it keys are read from the data store`,
    );
  const data = openStoreWithCredentials(flags.dataFlag, flags.data, values.credentials, options);
  if (flags.keys === undefined) return { data, keys: data, close: () => closeStore(data) };
  const keysCredentials = keysCredentialsFor(flags.data, flags.keys, values);
  let keys: ObjectStore;
  try {
    keys = openStoreWithCredentials(flags.keysFlag, flags.keys, keysCredentials, options);
  } catch (err) {
    void closeStore(data);
    throw err;
  }
  return { data, keys, close: async () => void (await Promise.all([closeStore(data), closeStore(keys)])) };
}

/**
 * The key store's credentials file: `--keys-credentials`, else `--credentials` when both stores are remote
 * stores of the same scheme (one account holding both buckets), else none (the SDK's own chain).
 */
export function keysCredentialsFor(
  dataUrl: string,
  keysUrl: string,
  values: { readonly credentials?: string | undefined; readonly "keys-credentials"?: string | undefined },
): string | undefined {
  return (
    values["keys-credentials"] ??
    (schemeOf(keysUrl) === schemeOf(dataUrl) && !isLocal(keysUrl) ? values.credentials : undefined)
  );
}

/** `parseArgs` options of stitch's remote-store flags: the upload's credentials, the read-ahead budget. */
export const STITCH_STORE_OPTIONS = {
  "upload-credentials": { type: "string" },
  "read-ahead": { type: "string" },
} as const;

/** The read-ahead of a remote source: many blobs in flight, bounded in bytes (64 MiB unless given). */
export const REMOTE_READ_AHEAD_DEPTH = 64;
export const REMOTE_READ_AHEAD_BYTES = 64 * 1024 * 1024;

/**
 * The stitch job's read-ahead for a source: a cloud store has latency per read, so up to 64 blobs are read
 * at once within the byte budget (`--read-ahead SIZE`, default 64 MiB); a directory keeps the job's default
 * (2 blobs ahead, no byte budget) unless `--read-ahead` is given.
 */
export function readAheadFor(
  sourceUrl: string,
  value: string | undefined,
): { readonly prefetch?: number; readonly prefetchBudgetBytes?: number } {
  const budget = value === undefined ? undefined : parseSize("--read-ahead", value);
  if (isLocal(sourceUrl))
    return budget === undefined ? {} : { prefetch: REMOTE_READ_AHEAD_DEPTH, prefetchBudgetBytes: budget };
  return { prefetch: REMOTE_READ_AHEAD_DEPTH, prefetchBudgetBytes: budget ?? REMOTE_READ_AHEAD_BYTES };
}
