/**
 * The cloud-store acceptance run shared by the S3, GCS and Azure tests: `cloudtap simulate` into a cloud
 * store (data and keys in two buckets with their own credentials), the same objects copied to a directory,
 * then `cloudtap stitch` and `cloudtap inspect` of both must agree packet for packet and blob for blob.
 * The CLI runs as a child process without blocking this one (the GCS stand-in and the fault proxy answer
 * from this process).
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { openStore } from "@cloudtap/object-store";
import { type CaptureDigest, digestCapture } from "./capture-compare.js";

const CLI = new URL("../../packages/cli/src/main.ts", import.meta.url).pathname;

export interface CliRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function cloudtapAsync(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
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

/** simulate into the cloud stores, and the same objects into `<work>/dir`: returns the directory. */
export async function simulateInto(s: CloudStores, work: string): Promise<string> {
  const sim = await cloudtapAsync([
    "simulate",
    "--out",
    s.dataUrl,
    "--keys-out",
    s.keysUrl,
    ...credentialArgs(s),
    "--connections",
    "16",
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
