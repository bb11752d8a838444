/**
 * The azblob:// backend over `@azure/storage-blob` (imported when a store is opened, never before; so is
 * `@azure/identity`, and only for the default chain). Calls go through the retry policy of
 * @cloudtap/object-store (the SDK's own retries, and its own resumption of broken downloads, are off, so
 * the bounds hold as written); reads resume from the last byte received of the same ETag; writes up to one
 * block are one Put Blob, larger ones staged blocks (each retried) and one Put Block List.
 *
 * Listing has no start-after in Azure: a cursor is a continuation token remembered from the page before,
 * or else a scan from the prefix that skips the keys up to it. Permissions: reading needs list and read
 * (SAS `l` and `r`); writing `c`/`w`, deleting `d`.
 */
import type { ContainerClient, RestError, StoragePipelineOptions } from "@azure/storage-blob";
import {
  type CredentialsSource,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type OpenedRead,
  type ProviderFailure,
  RemoteStore,
  type RemoteStoreOptions,
  type StorePermission,
} from "@cloudtap/object-store";
import { type AzureCredentials, azureCredentialsFromEnv, readAzureCredentials } from "./azure-credentials.js";
import { type AzureLocation, parseAzureUrl } from "./azure-url.js";

/** `partBytes`: objects up to this size are one Put Blob; larger ones blocks of this size. */
export type AzureStoreOptions = RemoteStoreOptions;

const PROVIDER_PERMISSION: Record<StorePermission, string> = {
  list: "blob list (SAS l)",
  get: "blob read (SAS r)",
  put: "blob create/write (SAS cw)",
  delete: "blob delete (SAS d)",
};

const BAD_CREDENTIALS = new Set([
  "AuthenticationFailed",
  "InvalidAuthenticationInfo",
  "NoAuthenticationInformation",
  "AuthenticationError",
  "CredentialUnavailableError",
]);
const PERMISSION = new Set([
  "AuthorizationPermissionMismatch",
  "AuthorizationFailure",
  "AuthorizationResourceTypeMismatch",
  "AuthorizationServiceMismatch",
  "AuthorizationSourceIPMismatch",
  "AuthorizationProtocolMismatch",
  "InsufficientAccountPermissions",
]);

export async function openAzureStore(url: string, options: AzureStoreOptions = {}): Promise<ObjectStore> {
  const location = parseAzureUrl(url);
  let credentials: AzureCredentials;
  let source: CredentialsSource;
  if (options.credentialsFile) {
    credentials = await readAzureCredentials(options.credentialsFile);
    source = { file: options.credentialsFile };
  } else {
    const env = azureCredentialsFromEnv();
    credentials = env.credentials;
    source = { ambient: env.source };
  }
  const sdk = await import("@azure/storage-blob");
  // Retries are ours (bounded by the policy): the SDK makes one try per call.
  const pipeline: StoragePipelineOptions = { retryOptions: { maxTries: 1 } };
  const containerUrl = `${location.endpoint}/${location.container}`;
  let container: ContainerClient;
  switch (credentials.kind) {
    case "shared-key":
      container = new sdk.ContainerClient(
        containerUrl,
        new sdk.StorageSharedKeyCredential(location.account, credentials.accountKey),
        pipeline,
      );
      break;
    case "sas":
      container = new sdk.ContainerClient(
        `${containerUrl}?${credentials.sasToken}`,
        new sdk.AnonymousCredential(),
        pipeline,
      );
      break;
    case "connection-string": {
      if (!location.endpointGiven) {
        container = new sdk.ContainerClient(credentials.connectionString, location.container, pipeline);
        break;
      }
      // The URL's endpoint wins over the connection string's, so one string serves an emulator too: its
      // key (or its SAS, the query of the service URL) goes with the URL's endpoint.
      const service = sdk.BlobServiceClient.fromConnectionString(credentials.connectionString, pipeline);
      const sas = new URL(service.url).search;
      container = new sdk.ContainerClient(`${containerUrl}${sas}`, service.credential, pipeline);
      break;
    }
    case "default-chain": {
      const identity = await import("@azure/identity");
      container = new sdk.ContainerClient(containerUrl, new identity.DefaultAzureCredential(), pipeline);
      break;
    }
  }
  return new AzureStore(container, location, source, options);
}

class AzureStore extends RemoteStore {
  /** Continuation tokens by the cursor they continue after ("<prefix>\n<startAfter>"), newest last. */
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly container: ContainerClient,
    location: AzureLocation,
    credentials: CredentialsSource,
    options: AzureStoreOptions,
  ) {
    super({
      url: location.display,
      root: location.root,
      credentials,
      container: { kind: "container", name: location.container },
      permissions: PROVIDER_PERMISSION,
      options,
    });
  }

  protected failureOf(err: unknown, key: string | undefined, timedOut: boolean): ProviderFailure {
    const e = err as Partial<RestError> & { details?: { errorCode?: string } };
    const status = e.statusCode;
    const code =
      e.details?.errorCode ??
      (e.response?.headers.get("x-ms-error-code") as string | undefined) ??
      (e.name === "CredentialUnavailableError" || e.name === "AuthenticationError" ? e.name : e.code);
    // A body cut mid-stream surfaces from the SDK's download stream as an AbortError (the response's
    // "aborted" event: the socket closed before the end) or as its "received less data than required"
    // check; neither is the caller's abort (handled before) nor our timeout: a broken connection.
    const broken =
      !timedOut && (e.name === "AbortError" || /received less data than required/.test(e.message ?? ""))
        ? Object.assign(new Error(`connection closed mid-body (${e.message})`), {
            code: "ECONNRESET",
            cause: err,
          })
        : err;
    const common = { status, code, cause: broken };
    // Azure answers a bad signature with 403 "Server failed to authenticate the request" (its code
    // AuthenticationFailed; Azurite says AuthorizationFailure): by the message, not the status.
    if (
      (code !== undefined && BAD_CREDENTIALS.has(code)) ||
      status === 401 ||
      /failed to authenticate/i.test(e.message ?? "")
    )
      return { kind: "bad-credentials", detail: code ?? `HTTP ${status}`, ...common };
    if ((code !== undefined && PERMISSION.has(code)) || status === 403)
      return { kind: "permission-denied", ...common };
    if (code === "ContainerNotFound" || (status === 404 && key === undefined))
      return { kind: "missing-container", ...common };
    if (code === "BlobNotFound" || status === 404) return { kind: "object-not-found", ...common };
    if (code === "ConditionNotMet" || status === 412) return { kind: "replaced", ...common };
    return common;
  }

  private async fetchPage(prefix: string, token: string | undefined, signal?: AbortSignal) {
    return this.retry(
      "list",
      "list",
      undefined,
      async (abortSignal) => {
        const pages = this.container
          .listBlobsFlat({ prefix: this.root.prefix(prefix), abortSignal })
          .byPage({ maxPageSize: 1000, ...(token === undefined ? {} : { continuationToken: token }) });
        const r = await pages.next();
        return r.done
          ? { items: [], next: undefined }
          : { items: r.value.segment.blobItems, next: r.value.continuationToken || undefined };
      },
      signal,
    );
  }

  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const pageSize = options.pageSize ?? 1000;
    const after = options.startAfter === undefined ? undefined : this.root.prefix(options.startAfter);
    let token = after === undefined ? undefined : this.tokens.get(`${prefix}\n${options.startAfter}`);
    const objects: ObjectInfo[] = [];
    let last: string | undefined;
    for (;;) {
      const page = await this.fetchPage(prefix, token, options.signal);
      const items = page.items.filter(
        (b) => after === undefined || Buffer.compare(Buffer.from(b.name), Buffer.from(after)) > 0,
      );
      for (let i = 0; i < items.length; i++) {
        const { name, properties } = items[i]!;
        last = this.addListed(
          objects,
          name,
          properties.contentLength ?? 0,
          properties.lastModified?.getTime() ?? 0,
          options,
        );
        if (objects.length >= pageSize) {
          const more = i < items.length - 1 || page.next !== undefined;
          if (!more) return { objects };
          // Cut inside this Azure page: the next call fetches it again; at its end: the next one.
          const resume = i < items.length - 1 ? token : page.next;
          this.remember(prefix, last, resume);
          return { objects, nextStartAfter: last };
        }
      }
      if (page.next === undefined) return { objects };
      token = page.next;
      if (objects.length > 0 && last !== undefined) {
        this.remember(prefix, last, token);
        return { objects, nextStartAfter: last };
      }
    }
  }

  private remember(prefix: string, startAfter: string, token: string | undefined): void {
    if (token === undefined) return;
    this.tokens.set(`${prefix}\n${startAfter}`, token);
    if (this.tokens.size > 64) this.tokens.delete(this.tokens.keys().next().value!);
  }

  protected async openRead(
    name: string,
    range: { readonly start: number; readonly end?: number | undefined },
    version: string | undefined,
    abortSignal: AbortSignal,
  ): Promise<OpenedRead> {
    try {
      const res = await this.container
        .getBlobClient(name)
        .download(range.start, range.end === undefined ? undefined : range.end - range.start, {
          abortSignal,
          maxRetryRequests: 0,
          ...(version === undefined ? {} : { conditions: { ifMatch: version } }),
        });
      return {
        body: res.readableStreamBody as unknown as AsyncIterable<Uint8Array>,
        length: res.contentLength,
        version: res.etag,
      };
    } catch (err) {
      // A range that starts at the end: nothing left to read.
      if ((err as RestError).statusCode === 416) return { body: [] };
      throw err;
    }
  }

  protected putObject(name: string, bytes: Uint8Array, abortSignal: AbortSignal): Promise<unknown> {
    return this.container.getBlockBlobClient(name).upload(bytes, bytes.length, { abortSignal });
  }

  /** Staged blocks, each retried, then one Put Block List. */
  protected async putParts(
    name: string,
    key: string,
    parts: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const blob = this.container.getBlockBlobClient(name);
    const ids: string[] = [];
    for await (const bytes of parts) {
      const id = Buffer.from(String(ids.length).padStart(8, "0")).toString("base64");
      await this.retry(
        "put",
        "put",
        key,
        (abortSignal) => blob.stageBlock(id, bytes, bytes.length, { abortSignal }),
        signal,
      );
      ids.push(id);
    }
    // Staged blocks become the blob only here, all at once: readers see the old blob or the whole new one.
    await this.retry("put", "put", key, (abortSignal) => blob.commitBlockList(ids, { abortSignal }), signal);
  }

  protected deleteObject(name: string, abortSignal: AbortSignal): Promise<unknown> {
    return this.container.getBlobClient(name).deleteIfExists({ abortSignal });
  }

  protected async statObject(name: string, abortSignal: AbortSignal) {
    const p = await this.container.getBlobClient(name).getProperties({ abortSignal });
    return { size: p.contentLength ?? 0, lastModifiedMs: p.lastModified?.getTime() ?? 0 };
  }
}
