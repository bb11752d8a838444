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
import { readS3Credentials } from "./s3-credentials.js";
import { parseS3Url, type S3Location } from "./s3-url.js";

/** `partBytes`: objects up to this size are one PutObject; larger ones a multipart upload of such parts. */
export type S3StoreOptions = RemoteStoreOptions;

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

class S3Store extends RemoteStore {
  constructor(
    private readonly sdk: Sdk,
    private readonly client: S3Client,
    private readonly location: S3Location,
    credentials: CredentialsSource,
    options: S3StoreOptions,
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
    const e = err as Partial<S3ServiceException> & { Code?: string };
    const code = e.name === "Error" || e.name === undefined ? e.Code : e.name;
    const status = e.$metadata?.httpStatusCode;
    const common = { status, code };
    if (code === undefined) return common;
    if (BAD_CREDENTIALS.has(code) || /could not load credentials/i.test(e.message ?? ""))
      return { kind: "bad-credentials", detail: code, ...common };
    if (code === "AccessDenied" || (status === 403 && code !== "RequestTimeTooSkewed"))
      return { kind: "permission-denied", ...common };
    if (code === "NoSuchBucket") return { kind: "missing-container", ...common };
    if (code === "NoSuchKey" || (code === "NotFound" && key !== undefined))
      return { kind: "object-not-found", ...common };
    if (code === "PreconditionFailed") return { kind: "replaced", ...common };
    return common;
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
      last = this.addListed(objects, o.Key, o.Size ?? 0, o.LastModified?.getTime() ?? 0, options);
    }
    return out.IsTruncated && last !== undefined ? { objects, nextStartAfter: last } : { objects };
  }

  protected async openRead(
    name: string,
    range: { readonly start: number; readonly end?: number | undefined },
    version: string | undefined,
    abortSignal: AbortSignal,
  ): Promise<OpenedRead> {
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
    return { body: out.Body as AsyncIterable<Uint8Array>, length: out.ContentLength, version: out.ETag };
  }

  protected putObject(name: string, bytes: Uint8Array, abortSignal: AbortSignal): Promise<unknown> {
    return this.client.send(
      new this.sdk.PutObjectCommand({ Bucket: this.location.bucket, Key: name, Body: bytes }),
      { abortSignal },
    );
  }

  /** A multipart upload, each part retried; aborted when it fails. */
  protected async putParts(
    name: string,
    key: string,
    parts: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const created = await this.retry(
      "put",
      "put",
      key,
      (abortSignal) =>
        this.client.send(
          new this.sdk.CreateMultipartUploadCommand({ Bucket: this.location.bucket, Key: name }),
          { abortSignal },
        ),
      signal,
    );
    const uploadId = created.UploadId!;
    const done: { ETag: string; PartNumber: number }[] = [];
    try {
      for await (const bytes of parts) {
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
          signal,
        );
        done.push({ ETag: out.ETag!, PartNumber });
      }
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
        signal,
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

  protected async statObject(name: string, abortSignal: AbortSignal) {
    const out = await this.client.send(
      new this.sdk.HeadObjectCommand({ Bucket: this.location.bucket, Key: name }),
      { abortSignal },
    );
    return { size: out.ContentLength ?? 0, lastModifiedMs: out.LastModified?.getTime() ?? 0 };
  }

  protected deleteObject(name: string, abortSignal: AbortSignal): Promise<unknown> {
    return this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.location.bucket, Key: name }), {
      abortSignal,
    });
  }
}
