/**
 * Cloud stores (`pnpm bench cloud-stores`): `cloudtap stitch` from each emulator next to a plain SDK
 * download of the same objects in the same run, and next to the directory run of the same blobs.
 *
 * The stores: s3rver (S3) and azurite (Azure Blob), each its own process on 127.0.0.1, and the test
 * harness's stand-in of the GCS JSON API (no GCS emulator runs here), which answers from this process.
 * The blobs: synthetic traffic (bench/synthetic-store.ts) in 1 MiB blobs, written to a directory and
 * uploaded to each store. Plain download: list the prefix, then get every object with the SDK, 16 at a
 * time, bytes counted and dropped (the rate the store delivers to one client). Stitch: `cloudtap stitch
 * --source <store> --pcapng --workers 1 --json` (CLOUD_BENCH_WORKERS sets `--workers`), its own `seconds`
 * (open, list, read, stitch, write),
 * with the remote read-ahead (64 blobs, 64 MiB). Fetch only: the same backend, listing and read-ahead as
 * that stitch, in its own process, with no stitching (bench/cloud-fetch-only.ts), its time to the first
 * blob listed apart: the stitch's cost beyond it is the stitcher's. Rates are blob MB (10^6 bytes) per
 * second.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { openStore } from "@cloudtap/object-store";
import { createAzuriteContainer, startAzurite, startGcsStandIn, startS3rver } from "@cloudtap/test-harness";
import type { BenchResult } from "./bench-result.js";
import { scratchDir } from "./scratch.js";
import { writeSyntheticStore } from "./synthetic-store.js";

const TOTAL = Number(process.env["CLOUD_BENCH_BYTES"] ?? 48 * 1024 * 1024);
const CLI = new URL("../packages/cli/bin/cloudtap.mjs", import.meta.url).pathname;
const PARALLEL = 16;
/** The stitch's `--workers` (CLOUD_BENCH_WORKERS, default 1: the fetch and the stitching on one thread). */
const WORKERS = process.env["CLOUD_BENCH_WORKERS"] ?? "1";

/** Runs without blocking this process: the GCS stand-in answers from it. */
function stitch(args: readonly string[], out: string): Promise<{ seconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [CLI, "stitch", ...args, "--pcapng", out, "--workers", WORKERS, "--json"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`cloudtap stitch failed: ${stderr.slice(-2000)}`));
      else resolve({ seconds: (JSON.parse(stdout) as { seconds: number }).seconds });
    });
  });
}

const FETCH_ONLY = new URL("./cloud-fetch-only.ts", import.meta.url).pathname;

/** cloudtap's fetch half alone, its own process (bench/cloud-fetch-only.ts). */
function fetchOnly(
  url: string,
  credentialsFile: string,
): Promise<{ seconds: number; openSeconds: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", FETCH_ONLY, url, credentialsFile], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`fetch only failed: ${stderr.slice(-2000)}`));
      else resolve(JSON.parse(stdout) as { seconds: number; openSeconds: number; bytes: number });
    });
  });
}

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

interface Emulator {
  readonly name: string;
  readonly url: string;
  readonly credentialsFile: string;
  /** List and get every object with the SDK alone: bytes. */
  plain(): Promise<number>;
  close(): Promise<void>;
}

export async function benchCloudStores(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(scratchDir(), "cloudtap-bench-cloud-"));
  const emulators: Emulator[] = [];
  try {
    const storeDir = join(dir, "store");
    const { blobs } = await writeSyntheticStore({
      dir: storeDir,
      payloadBytes: TOTAL,
      connections: 256,
      blobBytes: 1024 * 1024,
    });
    const files: string[] = [];
    const walk = (d: string, rel: string) => {
      for (const f of readdirSync(d)) {
        const p = join(d, f);
        if (statSync(p).isDirectory()) walk(p, `${rel}${f}/`);
        else files.push(`${rel}${f}`);
      }
    };
    walk(storeDir, "");
    const blobBytes = files.reduce((n, f) => n + statSync(join(storeDir, f)).size, 0);
    const mb = blobBytes / 1e6;
    registerCloudStores();
    const upload = async (url: string, credentialsFile: string) => {
      const to = openStore(url, { credentialsFile });
      let i = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (i < files.length) {
            const f = files[i++]!;
            await to.write(f, readFileSync(join(storeDir, f)));
          }
        }),
      );
    };
    const file = (name: string, value: unknown) => {
      const p = join(dir, name);
      writeFileSync(p, JSON.stringify(value));
      return p;
    };

    // S3: s3rver, path-style, the SDK as cloudtap configures it (checksums only when required).
    {
      const pair = { accessKeyId: "BENCHKEY000000000001", secretAccessKey: "bench-secret" };
      const s3 = await startS3rver({ buckets: ["bench"], keyPairs: [pair] });
      const url = `s3://bench/t?endpoint=${s3.endpoint}&path_style=true&region=us-east-1`;
      const credentialsFile = file("s3.json", {
        access_key_id: pair.accessKeyId,
        secret_access_key: pair.secretAccessKey,
      });
      await upload(url, credentialsFile);
      const sdk = await import("@aws-sdk/client-s3");
      const client = new sdk.S3Client({
        endpoint: s3.endpoint,
        forcePathStyle: true,
        region: "us-east-1",
        credentials: pair,
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      });
      emulators.push({
        name: "s3 (s3rver)",
        url,
        credentialsFile,
        plain: async () => {
          const keys: string[] = [];
          let token: string | undefined;
          do {
            const page = await client.send(
              new sdk.ListObjectsV2Command({ Bucket: "bench", Prefix: "t/", ContinuationToken: token }),
            );
            for (const o of page.Contents ?? []) keys.push(o.Key!);
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
          } while (token);
          return downloadAll(keys, async (key) => {
            const out = await client.send(new sdk.GetObjectCommand({ Bucket: "bench", Key: key }));
            return drain(out.Body as AsyncIterable<Uint8Array>);
          });
        },
        close: async () => {
          client.destroy();
          await s3.cleanup();
        },
      });
    }

    // Azure: azurite, shared key.
    {
      const account = {
        name: "benchacct",
        key: Buffer.from("bench-account-key-0123456789abcdef").toString("base64"),
      };
      const azurite = await startAzurite({ accounts: [account] });
      await createAzuriteContainer(azurite, account, "bench");
      const url = `azblob://benchacct/bench/t?endpoint=${azurite.endpoint(account.name)}`;
      const credentialsFile = file("azure.json", { access_key: account.key });
      await upload(url, credentialsFile);
      const sdk = await import("@azure/storage-blob");
      const container = new sdk.ContainerClient(
        `${azurite.endpoint(account.name)}/bench`,
        new sdk.StorageSharedKeyCredential(account.name, account.key),
      );
      emulators.push({
        name: "azure (azurite)",
        url,
        credentialsFile,
        plain: async () => {
          const keys: string[] = [];
          for await (const b of container.listBlobsFlat({ prefix: "t/" })) keys.push(b.name);
          return downloadAll(keys, async (key) => {
            const res = await container.getBlobClient(key).download();
            return drain(res.readableStreamBody as unknown as AsyncIterable<Uint8Array>);
          });
        },
        close: () => azurite.cleanup(),
      });
    }

    // GCS: the stand-in (in this process), a service account.
    {
      const gcs = await startGcsStandIn();
      const sa = gcs.createServiceAccount("bench@tap.iam.gserviceaccount.com");
      gcs.createBucket("bench", { [sa.email]: ["list", "get", "create", "delete"] });
      const url = `gs://bench/t?endpoint=${gcs.endpoint}`;
      const credentialsFile = file("gcs.json", sa.file);
      await upload(url, credentialsFile);
      const { Storage } = await import("@google-cloud/storage");
      const storage = new Storage({
        apiEndpoint: gcs.endpoint,
        useAuthWithCustomEndpoint: true,
        projectId: "bench",
        credentials: sa.file as never,
        scopes: ["https://www.googleapis.com/auth/devstorage.read_write"],
        retryOptions: { autoRetry: false },
      });
      // JWT access with scope (the service account signs its own token): no token endpoint to reach.
      (storage.authClient as unknown as { useJWTAccessWithScope?: boolean }).useJWTAccessWithScope = true;
      emulators.push({
        name: "gcs (stand-in)",
        url,
        credentialsFile,
        plain: async () => {
          const [objects] = await storage.bucket("bench").getFiles({ prefix: "t/", autoPaginate: true });
          return downloadAll(
            objects.map((o) => o.name),
            (key) => drain(storage.bucket("bench").file(key).createReadStream({ validation: false })),
          );
        },
        close: () => gcs.close(),
      });
    }

    const results: BenchResult[] = [];
    const local = await stitch(["--source", storeDir], join(dir, "dir.pcapng"));
    const localRate = mb / local.seconds;
    results.push({
      name: `directory: cloudtap stitch --workers ${WORKERS}`,
      value: localRate,
      unit: "MB/s",
      detail: `${(blobBytes / 2 ** 20).toFixed(0)} MiB in ${blobs} blobs, ${local.seconds.toFixed(2)} s`,
    });
    for (const e of emulators) {
      const t0 = process.hrtime.bigint();
      const got = await e.plain();
      const plainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (got !== blobBytes) throw new Error(`${e.name}: downloaded ${got} of ${blobBytes} bytes`);
      const plainRate = mb / plainSeconds;
      const fetched = await fetchOnly(e.url, e.credentialsFile);
      if (fetched.bytes !== blobBytes)
        throw new Error(`${e.name}: fetched ${fetched.bytes} of ${blobBytes} bytes`);
      const fetchRate = mb / fetched.seconds;
      const run = await stitch(
        ["--source", e.url, "--credentials", e.credentialsFile],
        join(dir, `${e.name.split(" ")[0]}.pcapng`),
      );
      const rate = mb / run.seconds;
      results.push({
        name: `${e.name}: plain SDK download`,
        value: plainRate,
        unit: "MB/s",
        detail: `${plainSeconds.toFixed(2)} s, ${PARALLEL} gets at a time`,
      });
      results.push({
        name: `${e.name}: cloudtap fetch only (no stitching)`,
        value: fetchRate,
        unit: "MB/s",
        detail: `${fetched.seconds.toFixed(2)} s, of which ${fetched.openSeconds.toFixed(2)} s to the first blob listed (SDK load, credentials, list); ${((fetchRate / plainRate) * 100).toFixed(0)}% of the plain download`,
      });
      results.push({
        name: `${e.name}: cloudtap stitch --workers ${WORKERS}`,
        value: rate,
        unit: "MB/s",
        detail: `${run.seconds.toFixed(2)} s, ${((rate / plainRate) * 100).toFixed(0)}% of the plain download, ${((rate / fetchRate) * 100).toFixed(0)}% of the fetch only, ${((rate / localRate) * 100).toFixed(0)}% of the directory run`,
        target: "at least 90% of the plain download",
      });
    }
    return results;
  } finally {
    for (const e of emulators) await e.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
