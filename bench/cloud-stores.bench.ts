/**
 * Cloud stores (`pnpm bench cloud-stores`): `cloudtap stitch` from each emulator next to a plain SDK
 * download of the same objects in the same run, and next to the directory run of the same blobs, twice:
 *
 * - **loopback**: the emulators on 127.0.0.1, on the same 2 cores as the stitch. Here the store's own work
 *   (the emulator, a Node process) and cloudtap's compete for the cores: the plain download alone keeps
 *   them about 90 % busy, so this pass measures CPU, not which side is the limit.
 * - **link** (CLOUD_BENCH_LINK, default 400mbit; "none" skips it): the whole pass again inside a network
 *   namespace of its own whose loopback the kernel shapes to that rate (a `tbf` queue), so the store
 *   delivers at the rate of a link, as a remote store does, and the question the target asks is answered:
 *   is the stitch as fast as the store can deliver? Needs root and `ip`/`tc`; skipped with a message
 *   otherwise. CLOUD_BENCH_LOOPBACK=0 runs this pass alone.
 *
 * The stores: s3rver (S3) and azurite (Azure Blob), each its own process, and the test harness's stand-in
 * of the GCS JSON API (no GCS emulator runs here), which answers from the bench's process. The blobs:
 * synthetic traffic (bench/synthetic-store.ts) in 1 MiB blobs, written to a directory and uploaded to each
 * store. Every measured run is its own process, timed from its start to its last byte, SDK import included:
 * - plain download (bench/cloud-plain-download.ts): the SDK alone lists the prefix and gets every object,
 *   16 at a time, bytes counted and dropped;
 * - fetch only (bench/cloud-fetch-only.ts): cloudtap's backend, listing and read-ahead (64 blobs, 64 MiB),
 *   no stitching, its time to the first blob listed apart;
 * - `cloudtap stitch --source <store> --pcapng --workers 1 --json` (CLOUD_BENCH_WORKERS sets `--workers`):
 *   its own `seconds` (open, list, read, stitch, write), the store on its own thread.
 * Rates are blob MB (10^6 bytes) per second.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { openStore } from "@cloudtap/object-store";
import { createAzuriteContainer, startAzurite, startGcsStandIn, startS3rver } from "@cloudtap/test-harness";
import type { BenchResult } from "./bench-result.js";
import type { PlainDownloadConfig } from "./cloud-plain-download.js";
import { scratchDir } from "./scratch.js";
import { writeSyntheticStore } from "./synthetic-store.js";

const TOTAL = Number(process.env["CLOUD_BENCH_BYTES"] ?? 192 * 1024 * 1024);
const CLI = new URL("../packages/cli/bin/cloudtap.mjs", import.meta.url).pathname;
/** The stitch's `--workers` (CLOUD_BENCH_WORKERS, default 1: the fetch and the stitching on one thread). */
const WORKERS = process.env["CLOUD_BENCH_WORKERS"] ?? "1";
/** The shaped link's rate, as `tc` reads it, or "none". */
const LINK = process.env["CLOUD_BENCH_LINK"] ?? "400mbit";
const FETCH_ONLY = new URL("./cloud-fetch-only.ts", import.meta.url).pathname;
const PLAIN = new URL("./cloud-plain-download.ts", import.meta.url).pathname;
const LINKED = new URL("./cloud-stores-linked.ts", import.meta.url).pathname;

/** Runs a process that prints one JSON line, without blocking this one (the GCS stand-in answers here). */
function jsonProcess<T>(label: string, command: string, args: readonly string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
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
      if (code !== 0) reject(new Error(`${label} failed: ${stderr.slice(-2000)}`));
      else resolve(JSON.parse(stdout) as T);
    });
  });
}

const stitch = (args: readonly string[], out: string) =>
  jsonProcess<{ seconds: number }>("cloudtap stitch", process.execPath, [
    CLI,
    "stitch",
    ...args,
    "--pcapng",
    out,
    "--workers",
    WORKERS,
    "--json",
  ]);

/** cloudtap's fetch half alone, its own process (bench/cloud-fetch-only.ts). */
const fetchOnly = (url: string, credentialsFile: string) =>
  jsonProcess<{ seconds: number; openSeconds: number; bytes: number }>("fetch only", process.execPath, [
    "--import",
    "tsx",
    FETCH_ONLY,
    url,
    credentialsFile,
  ]);

/** The SDK alone, its own process (bench/cloud-plain-download.ts). */
const plainDownload = (config: PlainDownloadConfig) =>
  jsonProcess<{ seconds: number; listedSeconds: number; bytes: number }>("plain download", process.execPath, [
    "--import",
    "tsx",
    PLAIN,
    JSON.stringify(config),
  ]);

interface Emulator {
  readonly name: string;
  readonly url: string;
  readonly credentialsFile: string;
  /** What the plain download lists and gets. */
  readonly plain: PlainDownloadConfig;
  close(): Promise<void>;
}

/** Both passes: on loopback, then (unless CLOUD_BENCH_LINK=none) inside a namespace with a shaped link. */
export async function benchCloudStores(): Promise<BenchResult[]> {
  const results =
    process.env["CLOUD_BENCH_LOOPBACK"] === "0"
      ? []
      : (await benchCloudStoresHere()).map((r) => ({ ...r, name: `loopback: ${r.name}` }));
  if (LINK === "none") return results;
  const ns = `cloudtap-bench-${process.pid}`;
  const ip = (...args: string[]) => spawnSync("ip", args, { encoding: "utf8" });
  const made = ip("netns", "add", ns);
  if (made.status !== 0) {
    process.stderr.write(
      `cloud-stores: no shaped-link pass (ip netns add: ${(made.stderr || made.error?.message) ?? ""})\n`,
    );
    return results;
  }
  try {
    const setUp = [
      ["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
      [
        "netns",
        "exec",
        ns,
        "tc",
        "qdisc",
        "add",
        "dev",
        "lo",
        "root",
        "tbf",
        "rate",
        LINK,
        "burst",
        "256kb",
        "latency",
        "100ms",
      ],
    ];
    for (const step of setUp) {
      const r = ip(...step);
      if (r.status !== 0) throw new Error(`ip ${step.join(" ")}: ${r.stderr}`);
    }
    const linked = await jsonProcess<BenchResult[]>("the shaped-link pass", "ip", [
      "netns",
      "exec",
      ns,
      process.execPath,
      "--import",
      "tsx",
      LINKED,
    ]);
    for (const r of linked) results.push({ ...r, name: `link ${LINK}: ${r.name}` });
  } finally {
    ip("netns", "del", ns);
  }
  return results;
}

/** One pass, on this process's network (the stores on its loopback). */
export async function benchCloudStoresHere(): Promise<BenchResult[]> {
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
      emulators.push({
        name: "s3 (s3rver)",
        url,
        credentialsFile,
        plain: { kind: "s3", endpoint: s3.endpoint, bucket: "bench", prefix: "t/", ...pair },
        close: () => s3.cleanup(),
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
      emulators.push({
        name: "azure (azurite)",
        url,
        credentialsFile,
        plain: {
          kind: "azure",
          endpoint: azurite.endpoint(account.name),
          account: account.name,
          key: account.key,
          container: "bench",
          prefix: "t/",
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
      emulators.push({
        name: "gcs (stand-in)",
        url,
        credentialsFile,
        plain: {
          kind: "gcs",
          endpoint: gcs.endpoint,
          bucket: "bench",
          prefix: "t/",
          serviceAccountFile: credentialsFile,
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
      const plain = await plainDownload(e.plain);
      const plainSeconds = plain.seconds;
      if (plain.bytes !== blobBytes)
        throw new Error(`${e.name}: downloaded ${plain.bytes} of ${blobBytes} bytes`);
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
        detail: `${plainSeconds.toFixed(2)} s, of which ${plain.listedSeconds.toFixed(2)} s to the list (SDK load, client, list); 16 gets at a time`,
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
