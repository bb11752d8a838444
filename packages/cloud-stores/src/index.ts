/**
 * The cloud schemes in one place, for every wiring that opens stores (the CLI, the fetcher, the
 * key-broker): `registerCloudStores()` registers s3://, gs://, azblob:// and Azure's
 * `https://<account>.blob.core.windows.net/...`. Registering costs nothing: a backend's package, and its
 * SDK with it, is imported only when a store of its scheme is first used (a lazily connecting store), so a
 * directory run never loads an SDK.
 */
import {
  createLazyStore,
  type ObjectStore,
  type OpenStoreOptions,
  registerStoreScheme,
  UnsupportedStoreUrlError,
} from "@cloudtap/object-store";

/** The URL schemes `registerCloudStores` adds, with an example of each. */
export const CLOUD_STORE_EXAMPLES = [
  "s3://bucket/prefix (S3-compatible: ?endpoint=http://host:9000&path_style=true; &region=R)",
  "gs://bucket/prefix (?endpoint=URL for a private or local endpoint)",
  "azblob://account/container/prefix (no container: netskope; ?endpoint=URL for Azurite)",
  "https://account.blob.core.windows.net/container/prefix",
] as const;

export function openS3(url: string, options: OpenStoreOptions): ObjectStore {
  return createLazyStore(url, async () => (await import("@cloudtap/store-s3")).openS3Store(url, options));
}

export function openGcs(url: string, options: OpenStoreOptions): ObjectStore {
  return createLazyStore(url, async () => (await import("@cloudtap/store-gcs")).openGcsStore(url, options));
}

export function openAzure(url: string, options: OpenStoreOptions): ObjectStore {
  return createLazyStore(
    url.replace(/\?.*$/, (q) => (/sig=/i.test(q) ? "?…" : q)),
    async () => (await import("@cloudtap/store-azure")).openAzureStore(url, options),
  );
}

let registered = false;

/** Registers the cloud schemes (once; later calls do nothing). */
export function registerCloudStores(): void {
  if (registered) return;
  registered = true;
  registerStoreScheme("s3", openS3);
  registerStoreScheme("gs", openGcs);
  registerStoreScheme("azblob", openAzure);
  registerStoreScheme("https", (url, options) => {
    if (!/^https:\/\/[a-z0-9]{3,24}\.blob\.core\.windows\.net(\/|$)/i.test(url))
      throw new UnsupportedStoreUrlError(
        url,
        "an https:// store is an Azure Blob URL (<account>.blob.core.windows.net)",
      );
    return openAzure(url, options);
  });
}
