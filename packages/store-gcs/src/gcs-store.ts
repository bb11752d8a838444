/**
 * The gs:// backend over `@google-cloud/storage` 7 (the last major that runs on Node 20), imported when a
 * store is opened, never before. Calls go through the retry policy of @cloudtap/object-store (the library's
 * own retries are off, so the bounds hold as written), reads resume from the last byte received of the same
 * generation, writes up to one part are one request (retried) and larger ones a resumable upload in parts
 * (one attempt: the streamed body is not kept).
 *
 * Credentials: a service-account file signs its own JWT for each call (Google's "JWT access with scope",
 * no token exchange); without a file, Application Default Credentials. Permissions: reading needs
 * storage.objects.list and storage.objects.get; writing storage.objects.create, deleting .delete.
 */
import { once } from "node:events";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
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
  withRetries,
} from "@cloudtap/object-store";
import type { Bucket, Storage, StorageOptions } from "@google-cloud/storage";
import { checkCrc32c } from "./crc32c-check.js";
import { readGcsCredentials } from "./gcs-credentials.js";
import { type GcsLocation, parseGcsUrl } from "./gcs-url.js";

/** `partBytes`: objects up to this size are one upload request; larger ones a resumable upload. */
export type GcsStoreOptions = RemoteStoreOptions;

const PROVIDER_PERMISSION: Record<StorePermission, string> = {
  list: "storage.objects.list",
  get: "storage.objects.get",
  put: "storage.objects.create",
  delete: "storage.objects.delete",
};

const SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";

export async function openGcsStore(url: string, options: GcsStoreOptions = {}): Promise<ObjectStore> {
  const location = parseGcsUrl(url);
  const credentials: CredentialsSource = options.credentialsFile
    ? { file: options.credentialsFile }
    : { ambient: "Google Application Default Credentials" };
  const account = options.credentialsFile ? await readGcsCredentials(options.credentialsFile) : undefined;
  const { Storage } = await import("@google-cloud/storage");
  const config: StorageOptions = {
    ...(location.endpoint === undefined ? {} : { apiEndpoint: location.endpoint }),
    // A custom endpoint gets the credentials too when a file names them (the library leaves them off).
    ...(location.endpoint !== undefined && account ? { useAuthWithCustomEndpoint: true } : {}),
    retryOptions: { autoRetry: false, maxRetries: 0 },
    ...(account
      ? {
          projectId: account.project_id ?? "cloudtap",
          credentials: account as unknown as NonNullable<StorageOptions["credentials"]>,
          scopes: [SCOPE],
        }
      : {}),
  };
  const storage = new Storage(config);
  if (account) {
    // A service account signs its own JWT for the API (what Google's client libraries call JWT access
    // with scope): no token exchange, so no call to the token endpoint. The flag is read when the auth
    // client is first made, before the first request.
    const auth = storage.authClient as unknown as { useJWTAccessWithScope?: boolean };
    auth.useJWTAccessWithScope = true;
  }
  return new GcsStore(storage, storage.bucket(location.bucket), location, credentials, options);
}

interface ApiErrorLike {
  readonly code?: number | string;
  readonly status?: number;
  readonly response?: { readonly status?: number };
  readonly message?: string;
  readonly errors?: readonly { readonly reason?: string; readonly message?: string }[];
}

/** Resolves with `call`, or rejects when `signal` aborts first (the library takes no signal for these). */
function racing<T>(call: Promise<T>, signal: AbortSignal): Promise<T> {
  call.catch(() => {});
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    call.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

const USER_AGENT = "cloudtap (gcloud-node-storage/7)";

/** Headers of `request` with the library's authorization added (none for an emulator without a file). */
function authorize(
  storage: Storage,
  request: { uri: string; headers: Record<string, string> },
): Promise<{ uri: string; headers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    storage.makeAuthenticatedRequest(request, {
      onAuthenticated: (err, authorized) => {
        if (err || !authorized) reject(err ?? new Error("the request was not authorized"));
        else resolve({ uri: authorized.uri, headers: (authorized.headers ?? {}) as Record<string, string> });
      },
    });
  });
}

/** A GET whose response is returned at its headers; `signal` aborts the request and its body. */
function httpGet(
  uri: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  const send = uri.startsWith("https:") ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(uri, { method: "GET", headers, signal }, resolve);
    req.once("error", reject);
    req.end();
  });
}

/** An API error as the library builds it (`code`: the status, `errors`: the JSON body's reasons). */
async function apiError(res: IncomingMessage): Promise<Error> {
  const parts: Buffer[] = [];
  for await (const chunk of res) parts.push(chunk as Buffer);
  const text = Buffer.concat(parts).toString("utf8");
  let parsed: { error?: { message?: string; errors?: { reason?: string; message?: string }[] } } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // Not JSON (a proxy's page): the text is the message.
  }
  return Object.assign(new Error(parsed.error?.message ?? (text || `HTTP ${res.statusCode}`)), {
    code: res.statusCode,
    errors: parsed.error?.errors ?? [],
  });
}

class GcsStore extends RemoteStore {
  constructor(
    readonly storage: Storage,
    private readonly bucket: Bucket,
    private readonly location: GcsLocation,
    credentials: CredentialsSource,
    options: GcsStoreOptions,
  ) {
    super({
      url: location.display,
      root: location.root,
      credentials,
      container: { kind: "bucket", name: location.bucket },
      permissions: PROVIDER_PERMISSION,
      options,
    });
  }

  protected failureOf(err: unknown, key: string | undefined): ProviderFailure {
    const e = err as ApiErrorLike;
    const status =
      typeof e.code === "number"
        ? e.code
        : (e.response?.status ?? (typeof e.status === "number" ? e.status : undefined));
    const reason = e.errors?.[0]?.reason;
    const message = e.message ?? "";
    const common = { status, code: reason };
    if (
      status === 401 ||
      /invalid_grant|invalid_client|Could not load the default credentials|Could not refresh access token/i.test(
        message,
      )
    )
      return { kind: "bad-credentials", detail: reason ?? message, ...common };
    if (status === 403) return { kind: "permission-denied", ...common };
    if (status === 404 && (key === undefined || /bucket/i.test(message)))
      return { kind: "missing-container", ...common };
    if (status === 404) return { kind: "object-not-found", ...common };
    if (status === 412) return { kind: "replaced", ...common };
    return common;
  }

  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const pageSize = options.pageSize ?? 1000;
    const after = options.startAfter === undefined ? undefined : this.root.prefix(options.startAfter);
    const [files, next] = await this.retry(
      "list",
      "list",
      undefined,
      (signal) =>
        racing(
          this.bucket.getFiles({
            prefix: this.root.prefix(prefix),
            // startOffset is inclusive: one more, and the cursor itself dropped below.
            maxResults: after === undefined ? pageSize : pageSize + 1,
            autoPaginate: false,
            ...(after === undefined ? {} : { startOffset: after }),
          }),
          signal,
        ),
      options.signal,
    );
    const objects: ObjectInfo[] = [];
    let last: string | undefined;
    for (const f of files) {
      if (f.name === after) continue;
      const { size, updated } = f.metadata;
      last = this.addListed(objects, f.name, Number(size ?? 0), updated ? Date.parse(updated) : 0, options);
    }
    return next && last !== undefined ? { objects, nextStartAfter: last } : { objects };
  }

  /**
   * One media download (`alt=media`), authorized by the library (its rules for credentials, a custom
   * endpoint and the universe domain) but sent with node:http: the library's own read stream is node-fetch
   * 2's copy of the response, which neither ends nor fails when the socket closes before the
   * content-length, so a cut connection was found only by the gap timeout. Here a cut is the response's
   * error ("aborted", ECONNRESET) at once, and the read resumes from the byte it reached.
   * Unlike the library's calls, this GET does not go through an HTTP(S)_PROXY of the environment.
   */
  protected async openRead(
    name: string,
    range: { readonly start: number; readonly end?: number | undefined },
    version: string | undefined,
    signal: AbortSignal,
  ): Promise<OpenedRead> {
    const ranged = range.start > 0 || range.end !== undefined;
    const query = new URLSearchParams({
      alt: "media",
      ...(version === undefined ? {} : { generation: version }),
    });
    const authorized = await authorize(this.storage, {
      uri: `${this.storage.baseUrl}/b/${encodeURIComponent(this.location.bucket)}/o/${encodeURIComponent(name)}?${query}`,
      headers: {
        // The stored bytes, never decompressed on the way (as the library reads with decompress: false).
        "Accept-Encoding": "gzip",
        "Cache-Control": "no-store",
        "User-Agent": USER_AGENT,
        ...(ranged ? { Range: `bytes=${range.start}-${range.end === undefined ? "" : range.end - 1}` } : {}),
      },
    });
    const res = await httpGet(authorized.uri, authorized.headers, signal);
    const status = res.statusCode ?? 0;
    // A range that starts at the end: nothing left to read.
    if (status === 416) {
      res.resume();
      return { body: [] };
    }
    if (status < 200 || status > 299) throw await apiError(res);
    const header = (h: string) => {
      const v = res.headers[h];
      return typeof v === "string" ? v : undefined;
    };
    const length = header("content-length");
    const generation = header("x-goog-generation");
    // Whole reads are checked against the object's CRC32C when the bytes are the stored ones (the
    // library's rule); ranged ones cannot be.
    const stored = header("x-goog-stored-content-encoding");
    const served = header("content-encoding");
    const crc = /(?:^|,)\s*crc32c=([^,]+)/.exec(header("x-goog-hash") ?? "")?.[1];
    const checked =
      !ranged && crc !== undefined && (stored === "identity" || (stored === "gzip" && served === "gzip"));
    return {
      body: checked ? checkCrc32c(res, crc, name) : res,
      length: length === undefined ? undefined : Number(length),
      version: generation,
    };
  }

  protected putObject(name: string, bytes: Uint8Array, signal: AbortSignal): Promise<unknown> {
    return racing(
      this.bucket.file(name).save(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), {
        resumable: false,
        validation: "crc32c",
        contentType: "application/octet-stream",
      }),
      signal,
    );
  }

  /** A resumable upload. */
  protected async putParts(
    name: string,
    key: string,
    parts: AsyncIterable<Uint8Array>,
    callerSignal: AbortSignal | undefined,
  ): Promise<void> {
    const file = this.bucket.file(name);
    // One attempt: the body streams through once and is not kept, so a broken streamed upload fails and
    // its caller writes it again (the rotating upload does); bodies up to one part are retried above.
    await withRetries(
      async (signal) => {
        // The session is opened by its own call, which carries the credentials to a custom endpoint too
        // (the library's streamed upload leaves them off there); the session URI authorizes the parts.
        const [uri] = await racing(
          file.createResumableUpload({ metadata: { contentType: "application/octet-stream" } }),
          signal,
        );
        const out = file.createWriteStream({
          uri,
          resumable: true,
          validation: "crc32c",
          contentType: "application/octet-stream",
        });
        const done = new Promise<void>((resolve, reject) => {
          out.once("finish", () => resolve());
          out.once("error", reject);
        });
        done.catch(() => {});
        const onAbort = () => out.destroy(signal.reason as Error);
        signal.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const chunk of parts) {
            // A failed upload never drains: wait for whichever comes first.
            if (!out.write(chunk)) await Promise.race([once(out, "drain"), done]);
          }
          out.end();
          await done;
        } finally {
          signal.removeEventListener("abort", onAbort);
        }
      },
      {
        policy: { ...this.policy, attempts: 1, callTimeoutMs: Math.max(this.policy.callTimeoutMs, 600_000) },
        classify: this.classify("put", key),
        signal: callerSignal,
      },
    );
  }

  protected deleteObject(name: string, signal: AbortSignal): Promise<unknown> {
    return racing(this.bucket.file(name).delete({ ignoreNotFound: true }), signal);
  }

  protected async statObject(name: string, signal: AbortSignal) {
    const [meta] = await racing(this.bucket.file(name).getMetadata(), signal);
    return { size: Number(meta.size ?? 0), lastModifiedMs: meta.updated ? Date.parse(meta.updated) : 0 };
  }
}
