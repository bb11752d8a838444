/**
 * The s3:// backend over `@aws-sdk/client-s3` (imported when a store is opened, never before). Every call
 * goes through the retry policy of @cloudtap/object-store (the SDK's own retries are off, so the bounds
 * hold as written); reads resume from the last byte received, of the same ETag; writes up to one part are a
 * single PutObject, larger ones a multipart upload whose parts are retried one by one.
 *
 * Permissions: reading needs s3:ListBucket and s3:GetObject only; s3:PutObject (and s3:AbortMultipartUpload)
 * to write, s3:DeleteObject to delete.
 */
import type {
  GetObjectCommandOutput,
  S3Client,
  S3ClientConfig,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import {
  BadCredentialsError,
  type CallFailure,
  type CredentialsSource,
  classifyCommonFailure,
  DEFAULT_RETRY_POLICY,
  type ListOptions,
  type ListPage,
  listAllPages,
  MissingContainerError,
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectStore,
  type OpenStoreOptions,
  PermissionDeniedError,
  partsOf,
  type ReadBytesOptions,
  type ReadOptions,
  RemoteRoot,
  type RetryPolicy,
  readAll,
  resumableRead,
  type StoreErrorContext,
  type StorePermission,
  withRetries,
} from "@cloudtap/object-store";
import { readS3Credentials } from "./s3-credentials.js";
import { parseS3Url, type S3Location } from "./s3-url.js";

export interface S3StoreOptions extends OpenStoreOptions {
  /** Objects up to this size are one PutObject; larger ones a multipart upload of parts this size (8 MiB). */
  readonly partBytes?: number;
  /** Told of each retried call (counters, tests). */
  readonly onRetry?: (what: string) => void;
}

const PROVIDER_PERMISSION: Record<StorePermission, string> = {
  list: "s3:ListBucket",
  get: "s3:GetObject",
  put: "s3:PutObject",
  delete: "s3:DeleteObject",
};

const BAD_CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "InvalidClientTokenId",
  "AuthorizationHeaderMalformed",
  "CredentialsProviderError",
]);

type Sdk = typeof import("@aws-sdk/client-s3");

export async function openS3Store(url: string, options: S3StoreOptions = {}): Promise<ObjectStore> {
  const location = parseS3Url(url);
  const credentials: CredentialsSource = options.credentialsFile
    ? { file: options.credentialsFile }
    : { ambient: "the AWS environment and default chain" };
  const file = options.credentialsFile ? await readS3Credentials(options.credentialsFile) : undefined;
  // The SDK warns on every process start that its releases after January 2027 need Node 22: noise on the
  // CLI's stderr, which the SDK lets its user turn off.
  process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true";
  const sdk = await import("@aws-sdk/client-s3");
  const region =
    file?.region ??
    location.region ??
    process.env["AWS_REGION"] ??
    process.env["AWS_DEFAULT_REGION"] ??
    // An S3-compatible endpoint rarely cares; AWS itself redirects a wrong region with a clear error.
    (location.endpoint || process.env["AWS_ENDPOINT_URL_S3"] || process.env["AWS_ENDPOINT_URL"]
      ? "us-east-1"
      : undefined);
  const config: S3ClientConfig = {
    ...(region === undefined ? {} : { region }),
    ...(location.endpoint === undefined ? {} : { endpoint: location.endpoint }),
    forcePathStyle: location.pathStyle,
    ...(file
      ? {
          credentials: {
            accessKeyId: file.accessKeyId,
            secretAccessKey: file.secretAccessKey,
            ...(file.sessionToken === undefined ? {} : { sessionToken: file.sessionToken }),
          },
        }
      : {}),
    // Retries are ours (bounded by the policy); the SDK makes one attempt per call.
    maxAttempts: 1,
    // Checksums only where S3 requires them: a streamed body with a trailing checksum is not understood by
    // every S3-compatible server (s3rver stores the aws-chunked framing as the object's bytes).
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
  return new S3Store(sdk, new sdk.S3Client(config), location, credentials, options);
}

class S3Store implements ObjectStore {
  readonly url: string;
  private readonly root: RemoteRoot;
  private readonly policy: RetryPolicy;
  private readonly partBytes: number;

  constructor(
    private readonly sdk: Sdk,
    private readonly client: S3Client,
    private readonly location: S3Location,
    private readonly credentials: CredentialsSource,
    private readonly options: S3StoreOptions,
  ) {
    this.url = location.display;
    this.root = new RemoteRoot(location.root);
    this.policy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.partBytes = options.partBytes ?? 8 * 1024 * 1024;
  }

  private context(key?: string): StoreErrorContext {
    return { store: this.url, credentials: this.credentials, ...(key === undefined ? {} : { key }) };
  }

  private classify(permission: StorePermission, key?: string) {
    return (err: unknown, timedOut: boolean): CallFailure => {
      const context = this.context(key);
      const e = err as Partial<S3ServiceException> & { Code?: string };
      const code = e.name === "Error" || e.name === undefined ? e.Code : e.name;
      const status = e.$metadata?.httpStatusCode;
      if (!timedOut && code !== undefined) {
        if (BAD_CREDENTIALS.has(code) || /could not load credentials/i.test(e.message ?? ""))
          return { retryable: false, error: new BadCredentialsError(context, code, { cause: err }) };
        if (code === "AccessDenied" || (status === 403 && code !== "RequestTimeTooSkewed"))
          return {
            retryable: false,
            error: new PermissionDeniedError(context, permission, PROVIDER_PERMISSION[permission], {
              cause: err,
            }),
          };
        if (code === "NoSuchBucket")
          return {
            retryable: false,
            error: new MissingContainerError(context, "bucket", this.location.bucket, { cause: err }),
          };
        if (code === "NoSuchKey" || (code === "NotFound" && key !== undefined))
          return {
            retryable: false,
            error: new ObjectNotFoundError(key ?? "", { cause: err, store: this.url }),
          };
        if (code === "PreconditionFailed")
          return {
            retryable: false,
            error: new ObjectNotFoundError(key ?? "", {
              cause: err,
              store: `${this.url} (replaced while read)`,
            }),
          };
      }
      return classifyCommonFailure(err, timedOut, context, {
        status,
        code,
        timeoutMs: this.policy.callTimeoutMs,
      });
    };
  }

  private retry<T>(
    what: string,
    permission: StorePermission,
    key: string | undefined,
    call: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetries(call, {
      policy: this.policy,
      classify: this.classify(permission, key),
      signal,
      onRetry: () => this.options.onRetry?.(what),
    });
  }

  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const out = await this.retry(
      "list",
      "list",
      undefined,
      (abortSignal) =>
        this.client.send(
          new this.sdk.ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: this.root.prefix(prefix),
            MaxKeys: options.pageSize ?? 1000,
            ...(options.startAfter === undefined ? {} : { StartAfter: this.root.prefix(options.startAfter) }),
          }),
          { abortSignal },
        ),
      options.signal,
    );
    const objects: ObjectInfo[] = [];
    let last: string | undefined;
    for (const o of out.Contents ?? []) {
      if (o.Key === undefined) continue;
      const k = this.root.key(o.Key);
      last = o.Key.slice(this.root.folder.length);
      if ("skipped" in k) {
        options.onSkipped?.(last, k.skipped);
        continue;
      }
      objects.push({ key: k.key, size: o.Size ?? 0, lastModifiedMs: o.LastModified?.getTime() ?? 0 });
    }
    return out.IsTruncated && last !== undefined ? { objects, nextStartAfter: last } : { objects };
  }

  list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    return listAllPages((p, o) => this.listPage(p, o), prefix, options);
  }

  read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const name = this.root.name(key);
    const classify = this.classify("get", key);
    return resumableRead({
      start: options.range?.start ?? 0,
      end: options.range?.end,
      policy: this.policy,
      classify,
      signal: options.signal,
      onRetry: () => this.options.onRetry?.("read"),
      open: async (range, version, abortSignal) => {
        if (range.end !== undefined && range.end <= range.start) return { body: [] };
        let out: GetObjectCommandOutput;
        try {
          out = await this.client.send(
            new this.sdk.GetObjectCommand({
              Bucket: this.location.bucket,
              Key: name,
              ...(range.start > 0 || range.end !== undefined
                ? { Range: `bytes=${range.start}-${range.end === undefined ? "" : range.end - 1}` }
                : {}),
              ...(version === undefined ? {} : { IfMatch: version }),
            }),
            { abortSignal },
          );
        } catch (err) {
          // A range that starts at the end: nothing left to read.
          if ((err as { name?: string }).name === "InvalidRange") return { body: [] };
          throw err;
        }
        return {
          body: out.Body as AsyncIterable<Uint8Array>,
          length: out.ContentLength,
          version: out.ETag,
        };
      },
    });
  }

  async readBytes(key: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const bytes = await readAll(this.read(key, options));
    if (!options.allocate) return bytes;
    const into = options.allocate(bytes.length).subarray(0, bytes.length);
    into.set(bytes);
    return into;
  }

  async write(
    key: string,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const name = this.root.name(key);
    const parts = partsOf(body, this.partBytes);
    const first = await parts.next();
    const second = first.done ? first : await parts.next();
    if (second.done) {
      const bytes = first.done ? new Uint8Array(0) : first.value;
      await this.retry(
        "put",
        "put",
        key,
        (abortSignal) =>
          this.client.send(
            new this.sdk.PutObjectCommand({ Bucket: this.location.bucket, Key: name, Body: bytes }),
            { abortSignal },
          ),
        options.signal,
      );
      return;
    }
    const created = await this.retry(
      "put",
      "put",
      key,
      (abortSignal) =>
        this.client.send(
          new this.sdk.CreateMultipartUploadCommand({ Bucket: this.location.bucket, Key: name }),
          { abortSignal },
        ),
      options.signal,
    );
    const uploadId = created.UploadId!;
    const done: { ETag: string; PartNumber: number }[] = [];
    try {
      const upload = async (bytes: Uint8Array) => {
        const PartNumber = done.length + 1;
        const out = await this.retry(
          "put",
          "put",
          key,
          (abortSignal) =>
            this.client.send(
              new this.sdk.UploadPartCommand({
                Bucket: this.location.bucket,
                Key: name,
                UploadId: uploadId,
                PartNumber,
                Body: bytes,
              }),
              { abortSignal },
            ),
          options.signal,
        );
        done.push({ ETag: out.ETag!, PartNumber });
      };
      await upload(first.value!);
      await upload(second.value);
      for await (const bytes of parts) await upload(bytes);
      await this.retry(
        "put",
        "put",
        key,
        (abortSignal) =>
          this.client.send(
            new this.sdk.CompleteMultipartUploadCommand({
              Bucket: this.location.bucket,
              Key: name,
              UploadId: uploadId,
              MultipartUpload: { Parts: done },
            }),
            { abortSignal },
          ),
        options.signal,
      );
    } catch (err) {
      await this.client
        .send(
          new this.sdk.AbortMultipartUploadCommand({
            Bucket: this.location.bucket,
            Key: name,
            UploadId: uploadId,
          }),
        )
        .catch(() => {}); // the upload's own error is the one to report
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const name = this.root.name(key);
    await this.retry("delete", "delete", key, (abortSignal) =>
      this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.location.bucket, Key: name }), {
        abortSignal,
      }),
    );
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const name = this.root.name(key);
    try {
      const out = await this.retry("stat", "get", key, (abortSignal) =>
        this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.location.bucket, Key: name }), {
          abortSignal,
        }),
      );
      return { key, size: out.ContentLength ?? 0, lastModifiedMs: out.LastModified?.getTime() ?? 0 };
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
  }
}
