/**
 * A plain SDK download of every object under a prefix, in its own process, as a user's own script (or the
 * provider's CLI) would do it: import the SDK, make the client, list, get every object 16 at a time, bytes
 * counted and dropped. Timed like `cloudtap stitch --json`'s `seconds`: from before the SDK is imported to
 * the last byte, so the SDK's import and the client's set-up are in both. Run by the cloud-stores bench.
 *
 * Usage: node --import tsx bench/cloud-plain-download.ts '<json config>'
 *   {"kind":"s3","endpoint","bucket","prefix","accessKeyId","secretAccessKey"}
 *   {"kind":"azure","endpoint","account","key","container","prefix"}
 *   {"kind":"gcs","endpoint","bucket","prefix","serviceAccountFile"}
 * Prints JSON: `seconds`, `listedSeconds` (SDK loaded, client made, first page listed) and `bytes`.
 */
import { readFileSync } from "node:fs";

export type PlainDownloadConfig =
  | {
      readonly kind: "s3";
      readonly endpoint: string;
      readonly bucket: string;
      readonly prefix: string;
      readonly accessKeyId: string;
      readonly secretAccessKey: string;
    }
  | {
      readonly kind: "azure";
      readonly endpoint: string;
      readonly account: string;
      readonly key: string;
      readonly container: string;
      readonly prefix: string;
    }
  | {
      readonly kind: "gcs";
      readonly endpoint: string;
      readonly bucket: string;
      readonly prefix: string;
      readonly serviceAccountFile: string;
    };

const PARALLEL = 16;

/** Gets every key with `get` (bytes counted), `PARALLEL` at a time. */
async function downloadAll(keys: readonly string[], get: (key: string) => Promise<number>): Promise<number> {
  let next = 0;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < keys.length) {
        // Not `bytes += await ...`: that reads `bytes` before the wait and loses the others' counts.
        const n = await get(keys[next++]!);
        bytes += n;
      }
    }),
  );
  return bytes;
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const c of body) n += c.length;
  return n;
}

/** Lists (then calls `listed`), downloads every object: the bytes. */
async function plain(c: PlainDownloadConfig, listed: () => void): Promise<number> {
  switch (c.kind) {
    case "s3": {
      const sdk = await import("@aws-sdk/client-s3");
      // As cloudtap configures the SDK: checksums only when required.
      const client = new sdk.S3Client({
        endpoint: c.endpoint,
        forcePathStyle: true,
        region: "us-east-1",
        credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey },
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      });
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new sdk.ListObjectsV2Command({ Bucket: c.bucket, Prefix: c.prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) keys.push(o.Key!);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      listed();
      const bytes = await downloadAll(keys, async (key) => {
        const out = await client.send(new sdk.GetObjectCommand({ Bucket: c.bucket, Key: key }));
        return drain(out.Body as AsyncIterable<Uint8Array>);
      });
      client.destroy();
      return bytes;
    }
    case "azure": {
      const sdk = await import("@azure/storage-blob");
      const container = new sdk.ContainerClient(
        `${c.endpoint}/${c.container}`,
        new sdk.StorageSharedKeyCredential(c.account, c.key),
      );
      const keys: string[] = [];
      for await (const b of container.listBlobsFlat({ prefix: c.prefix })) keys.push(b.name);
      listed();
      return downloadAll(keys, async (key) => {
        const res = await container.getBlobClient(key).download();
        return drain(res.readableStreamBody as unknown as AsyncIterable<Uint8Array>);
      });
    }
    case "gcs": {
      const { Storage } = await import("@google-cloud/storage");
      const storage = new Storage({
        apiEndpoint: c.endpoint,
        useAuthWithCustomEndpoint: true,
        projectId: "bench",
        credentials: JSON.parse(readFileSync(c.serviceAccountFile, "utf8")),
        scopes: ["https://www.googleapis.com/auth/devstorage.read_write"],
        retryOptions: { autoRetry: false },
      });
      // JWT access with scope (the service account signs its own token): no token endpoint to reach.
      (storage.authClient as unknown as { useJWTAccessWithScope?: boolean }).useJWTAccessWithScope = true;
      const bucket = storage.bucket(c.bucket);
      const [objects] = await bucket.getFiles({ prefix: c.prefix, autoPaginate: true });
      listed();
      return downloadAll(
        objects.map((o) => o.name),
        (key) => drain(bucket.file(key).createReadStream({ validation: false })),
      );
    }
  }
}

const config = JSON.parse(process.argv[2] ?? "null") as PlainDownloadConfig | null;
if (!config) throw new Error("usage: cloud-plain-download.ts '<json config>'");
const started = process.hrtime.bigint();
const since = () => Number(process.hrtime.bigint() - started) / 1e9;
let listedSeconds = 0;
const bytes = await plain(config, () => {
  listedSeconds = since();
});
process.stdout.write(`${JSON.stringify({ seconds: since(), listedSeconds, bytes })}\n`);
