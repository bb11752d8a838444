/**
 * Real object-store emulators for tests, each its own process on 127.0.0.1 with its data in a temporary
 * directory, ended by its PID:
 * - s3rver (S3): run under `node --openssl-legacy-provider` (its continuation tokens use a DES cipher that
 *   OpenSSL 3 hides; without it ListObjectsV2 answers 500). Key pairs and buckets are registered at start.
 * - azurite (Azure Blob): its blob bin under node (one PID), `--disableTelemetry` (it would call out) and
 *   `--skipApiVersionCheck` (the SDK may be newer than the emulator); accounts from AZURITE_ACCOUNTS.
 * The GCS stand-in is in gcs-stand-in.ts: no GCS emulator runs on this machine.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const address = srv.address();
  const port = typeof address === "object" && address ? address.port : 0;
  srv.close();
  await once(srv, "close");
  return port;
}

export interface EmulatorProcess {
  readonly port: number;
  readonly pid: number;
  /** SIGTERM by PID, then SIGKILL if it lingers; removes its data directory. */
  cleanup(): Promise<void>;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(
  child: ChildProcess,
  ready: (log: string) => boolean,
  what: string,
  timeoutMs: number,
) {
  let log = "";
  const onData = (d: Buffer) => {
    log += d.toString();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const deadline = Date.now() + timeoutMs;
  while (!ready(log)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited during start (${child.exitCode ?? child.signalCode}): ${log}`);
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`${what} not ready within ${timeoutMs} ms: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.stdout?.off("data", onData);
  child.stderr?.off("data", onData);
  child.stdout?.resume();
  child.stderr?.resume();
}

export interface S3KeyPair {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface S3rverOptions {
  readonly buckets: readonly string[];
  readonly keyPairs: readonly S3KeyPair[];
  readonly port?: number;
}

export interface S3rver extends EmulatorProcess {
  /** `http://127.0.0.1:<port>` (path-style). */
  readonly endpoint: string;
}

export async function startS3rver(options: S3rverOptions): Promise<S3rver> {
  const directory = mkdtempSync(join(tmpdir(), "cloudtap-s3rver-"));
  const port = options.port ?? (await freePort());
  const main = join(dirname(fileURLToPath(import.meta.url)), "s3rver-main.cjs");
  const child = spawn(
    process.execPath,
    [
      "--openssl-legacy-provider",
      main,
      JSON.stringify({ port, directory, buckets: options.buckets, keyPairs: options.keyPairs }),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  await waitFor(child, (log) => log.includes(`ready ${port}`), "s3rver", 30_000);
  return {
    port,
    pid: child.pid!,
    endpoint: `http://127.0.0.1:${port}`,
    cleanup: async () => {
      await stopChild(child);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

export interface AzuriteAccount {
  readonly name: string;
  /** Base64 account key. */
  readonly key: string;
}

export interface AzuriteOptions {
  readonly accounts: readonly AzuriteAccount[];
  readonly port?: number;
}

export interface Azurite extends EmulatorProcess {
  /** The blob endpoint of an account: `http://127.0.0.1:<port>/<account>`. */
  endpoint(account: string): string;
}

export async function startAzurite(options: AzuriteOptions): Promise<Azurite> {
  const directory = mkdtempSync(join(tmpdir(), "cloudtap-azurite-"));
  const port = options.port ?? (await freePort());
  const main = join(dirname(require.resolve("azurite/package.json")), "dist/src/blob/main.js");
  const child = spawn(
    process.execPath,
    [
      main,
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      "--location",
      directory,
      "--skipApiVersionCheck",
      "--disableTelemetry",
      "--loose",
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, AZURITE_ACCOUNTS: options.accounts.map((a) => `${a.name}:${a.key}`).join(";") },
    },
  );
  await waitFor(child, (log) => /successfully listens/i.test(log), "azurite", 60_000);
  return {
    port,
    pid: child.pid!,
    endpoint: (account) => `http://127.0.0.1:${port}/${account}`,
    cleanup: async () => {
      await stopChild(child);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Makes a container in an azurite account (the store backends never create one: they only use it). */
export async function createAzuriteContainer(
  azurite: Azurite,
  account: AzuriteAccount,
  container: string,
): Promise<void> {
  const sdk = await import("@azure/storage-blob");
  const client = new sdk.ContainerClient(
    `${azurite.endpoint(account.name)}/${container}`,
    new sdk.StorageSharedKeyCredential(account.name, account.key),
  );
  await client.createIfNotExists();
}

/**
 * A container SAS token (without the leading `?`) signed with the account's key, granting only
 * `permissions` (Azure's letters: `r` read, `l` list, `c` create, `w` write, `d` delete) for an hour.
 * Azurite enforces a SAS's permissions, so a token with `l` alone is a real per-blob read denial.
 */
export async function azuriteContainerSas(
  account: AzuriteAccount,
  container: string,
  permissions: string,
): Promise<string> {
  const sdk = await import("@azure/storage-blob");
  const now = Date.now();
  return sdk
    .generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: sdk.ContainerSASPermissions.parse(permissions),
        startsOn: new Date(now - 5 * 60_000),
        expiresOn: new Date(now + 60 * 60_000),
        protocol: sdk.SASProtocol.HttpsAndHttp,
      },
      new sdk.StorageSharedKeyCredential(account.name, account.key),
    )
    .toString();
}
