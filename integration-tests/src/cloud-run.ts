/**
 * The cloud-store acceptance run shared by the S3, GCS and Azure tests: `cloudtap simulate` into a cloud
 * store (data and keys in two buckets with their own credentials), the same objects copied to a directory,
 * then `cloudtap stitch` and `cloudtap inspect` of both must agree packet for packet and blob for blob.
 * The CLI runs as a child process without blocking this one (the GCS stand-in and the fault proxy answer
 * from this process).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { ObjectNotFoundError, openStore } from "@cloudtap/object-store";
import { CLOUDTAP_BIN, type FaultProxy } from "@cloudtap/test-harness";
import { type CaptureDigest, digestCapture } from "./capture-compare.js";

export interface CliRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function cloudtapAsync(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLOUDTAP_BIN, ...args], {
      env: { ...process.env, ...env },
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
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

/** Copies every object of a cloud store to a directory store (the directory run's input). */
export async function copyToDirectory(url: string, credentialsFile: string, dir: string): Promise<number> {
  registerCloudStores();
  const from = openStore(url, { credentialsFile, readOnly: true });
  const to = openStore(dir);
  let n = 0;
  for await (const o of from.list("")) {
    await to.write(o.key, await from.readBytes(o.key));
    n++;
  }
  return n;
}

export interface CloudStores {
  readonly dataUrl: string;
  readonly dataCredentials: string;
  readonly keysUrl: string;
  readonly keysCredentials: string;
}

export function credentialArgs(s: CloudStores): string[] {
  return ["--credentials", s.dataCredentials, "--keys-credentials", s.keysCredentials];
}

/**
 * simulate into the cloud stores, and the same objects into `<work>/dir`: returns the directory. The
 * default simulation is 16 connections (in 48 KiB blobs); a test may ask for more connections.
 */
export async function simulateInto(
  s: CloudStores,
  work: string,
  options: { readonly connections?: number } = {},
): Promise<string> {
  const sim = await cloudtapAsync([
    "simulate",
    "--out",
    s.dataUrl,
    "--keys-out",
    s.keysUrl,
    ...credentialArgs(s),
    "--connections",
    String(options.connections ?? 16),
    "--seed",
    "13",
    "--blob-size",
    "48KiB",
    "--json",
  ]);
  if (sim.status !== 0) throw new Error(`simulate failed: ${sim.stderr}`);
  const dir = join(work, "dir");
  mkdirSync(dir, { recursive: true });
  await copyToDirectory(s.dataUrl, s.dataCredentials, dir);
  await copyToDirectory(s.keysUrl, s.keysCredentials, dir);
  return dir;
}

export async function stitchDigest(
  out: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ run: CliRun; digest?: CaptureDigest }> {
  const run = await cloudtapAsync(["stitch", ...args, "--pcapng", out, "--workers", "1", "--json"], env);
  return run.status === 0 ? { run, digest: await digestCapture(out) } : { run };
}

/** The inventory of `inspect --json`, with the store URLs left out (they differ by design). */
export async function inventory(args: readonly string[]): Promise<{ run: CliRun; report?: unknown }> {
  const run = await cloudtapAsync(["inspect", ...args, "--json"]);
  if (run.status !== 0 && run.status !== 1) return { run };
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === "object")
      return Object.fromEntries(
        Object.entries(v)
          .filter(([k]) => !/^(store|url|keyStore|elapsedMs|seconds)$/.test(k))
          .map(([k, x]) => [k, strip(x)]),
      );
    return v;
  };
  return { run, report: strip(JSON.parse(run.stdout)) };
}

/**
 * A large object (4 MiB, so the break comes after the read has started yielding, not inside the SDK's
 * first response) read through the fault proxy, its connection cut after 1 MiB: the read resumes from the
 * last byte and returns every byte once. Then the same cut with the object replaced while the read is
 * suspended: the resumed read asks for the first version (ETag, generation) and fails with "replaced
 * while read" instead of splicing two versions. `url` reaches the store directly, `viaProxy` through the
 * proxy; the object is `zz-resume/blob` under the store's root, deleted at the end.
 */
export async function checkResumedReads(options: {
  readonly url: string;
  readonly viaProxy: string;
  readonly credentialsFile: string;
  readonly proxy: FaultProxy;
  /**
   * false for a server that ignores conditional reads (s3rver answers a GET with If-Match whatever the
   * ETag): then the check is that the resumed request asks for the first version.
   */
  readonly serverChecksVersion?: boolean;
}): Promise<void> {
  registerCloudStores();
  const key = "zz-resume/blob";
  const direct = openStore(options.url, { credentialsFile: options.credentialsFile });
  const source = openStore(options.viaProxy, { credentialsFile: options.credentialsFile, readOnly: true });
  const original = randomBytes(4 << 20);
  const match = (req: { method?: string | undefined; url?: string | undefined }) =>
    req.method === "GET" && /zz-resume/.test(req.url ?? "");
  await direct.write(key, original);
  try {
    const resetsBefore = options.proxy.injected.reset;
    options.proxy.resetMidBody(1, 1 << 20, match);
    const whole = Buffer.from(await source.readBytes(key));
    assert.equal(options.proxy.injected.reset, resetsBefore + 1, "the read was cut");
    assert.equal(whole.length, original.length);
    assert.ok(whole.equals(original), "every byte once, in order, after the resumption");

    options.proxy.resetMidBody(1, 1 << 20, match);
    if (options.serverChecksVersion === false) {
      const resumed: (string | undefined)[] = [];
      options.proxy.deny((req) => {
        if (match(req) && req.headers.range) resumed.push(req.headers["if-match"] as string | undefined);
        return false;
      });
      // The ETag of a single-part upload (4 MiB is under the part size) is the MD5 of the bytes.
      const etag = `"${createHash("md5").update(original).digest("hex")}"`;
      try {
        await source.readBytes(key);
      } finally {
        options.proxy.deny(undefined);
      }
      assert.equal(options.proxy.injected.reset, resetsBefore + 2, "the second read was cut");
      assert.equal(resumed.length, 1, "one resumed request");
      assert.equal(resumed[0], etag, "the resumed GET asks for the first version (If-Match)");
      return;
    }
    const got: Uint8Array[] = [];
    await assert.rejects(
      async () => {
        for await (const chunk of source.read(key)) {
          // The read is suspended here: the object is replaced before the read meets the cut.
          if (got.length === 0) await direct.write(key, randomBytes(4 << 20));
          got.push(chunk);
        }
      },
      (err: Error) => err instanceof ObjectNotFoundError && /replaced while read|not found/.test(err.message),
    );
    assert.equal(options.proxy.injected.reset, resetsBefore + 2, "the second read was cut");
    const read = Buffer.concat(got);
    assert.ok(read.length > 0 && read.length <= 1 << 20, `bytes before the cut: ${read.length}`);
    assert.ok(read.equals(original.subarray(0, read.length)), "only the first version's bytes came out");
  } finally {
    options.proxy.resetMidBody(0, 0);
    await direct.delete(key);
  }
}
