/**
 * The mesh's certificates for a container deployment: one private CA and one directory per identity, so
 * each container mounts only its own key. `createPki` makes them (openssl, ECDSA P-256, CN and URI SAN
 * `spiffe://cloudtap/<identity>`, server certificates with DNS SANs `localhost`, `<identity>` and the
 * `--dns` names); this spreads them:
 *
 *   OUT/ca/ca.crt, OUT/ca/ca.key                          the CA (mounted by nothing else)
 *   OUT/<identity>/ca.crt, <identity>.crt, <identity>.key  one per identity (fetcher, key-broker, ...)
 *
 *   node make-pki.mjs OUT [--dns NAME]... [--days N] [--force]
 *
 * An existing CA is kept (a restarted stack keeps its certificates) unless `--force`; exit 2 on bad
 * arguments, 1 when openssl fails.
 */
import { access, chmod, copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { SERVICE_IDENTITIES } from "../identity.js";
import { caCertificatePath, certificatePath, createPki, privateKeyPath } from "../pki.js";

export interface MakePkiOptions {
  readonly outDir: string;
  readonly dnsNames: readonly string[];
  readonly validityDays?: number;
  readonly force: boolean;
}

export class MakePkiUsageError extends Error {
  override readonly name = "MakePkiUsageError";
}

export const MAKE_PKI_USAGE = "usage: make-pki OUT_DIR [--dns NAME]... [--days N] [--force]";

export function parseMakePkiArgs(argv: readonly string[]): MakePkiOptions {
  const dnsNames: string[] = [];
  const positional: string[] = [];
  let validityDays: number | undefined;
  let force = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--force") force = true;
    else if (arg === "--dns" || arg === "--days") {
      const value = argv[++i];
      if (value === undefined) throw new MakePkiUsageError(`${arg} needs a value`);
      if (arg === "--dns") {
        // A DNS name as a SAN: letters, digits, hyphens and dots, no wildcard.
        if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(value))
          throw new MakePkiUsageError(`--dns ${JSON.stringify(value)} is not a host name`);
        dnsNames.push(value);
      } else {
        validityDays = Number(value);
        if (!Number.isInteger(validityDays) || validityDays <= 0)
          throw new MakePkiUsageError(`--days ${value} is not a positive whole number`);
      }
    } else if (arg.startsWith("--")) throw new MakePkiUsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 1) throw new MakePkiUsageError("exactly one OUT_DIR is needed");
  return {
    outDir: positional[0]!,
    dnsNames,
    force,
    ...(validityDays === undefined ? {} : { validityDays }),
  };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Makes (or keeps) the CA and every identity's directory. Returns whether new certificates were made. */
export async function makePki(options: MakePkiOptions): Promise<boolean> {
  const caDir = join(options.outDir, "ca");
  const complete = async () => {
    for (const id of SERVICE_IDENTITIES) {
      if (!(await exists(privateKeyPath(join(options.outDir, id), id)))) return false;
    }
    return exists(caCertificatePath(caDir));
  };
  if (!options.force && (await complete())) return false;
  await createPki(caDir, {
    extraDnsNames: options.dnsNames,
    ...(options.validityDays === undefined ? {} : { validityDays: options.validityDays }),
  });
  for (const id of SERVICE_IDENTITIES) {
    const dir = join(options.outDir, id);
    // The directory may be a volume's mount point that exists already; its mode is the image's.
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await copyFile(caCertificatePath(caDir), caCertificatePath(dir));
    await copyFile(certificatePath(caDir, id), certificatePath(dir, id));
    const key = privateKeyPath(dir, id);
    await rm(key, { force: true });
    await copyFile(privateKeyPath(caDir, id), key);
    await chmod(key, 0o600);
    await chmod(caCertificatePath(dir), 0o644);
    await chmod(certificatePath(dir, id), 0o644);
    // Only the CA stays in the CA's directory.
    await rm(certificatePath(caDir, id), { force: true });
    await rm(privateKeyPath(caDir, id), { force: true });
  }
  return true;
}

async function main(): Promise<void> {
  let options: MakePkiOptions;
  try {
    options = parseMakePkiArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof MakePkiUsageError)) throw err;
    process.stderr.write(`make-pki: ${err.message}\n${MAKE_PKI_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const made = await makePki(options);
    process.stdout.write(
      made
        ? `make-pki: a new CA and certificates for ${SERVICE_IDENTITIES.join(", ")} in ${options.outDir}\n`
        : `make-pki: the certificates in ${options.outDir} are complete; kept (--force makes new ones)\n`,
    );
  } catch (err) {
    process.stderr.write(`make-pki: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

// Run as a program (the bundle in the images, or through tsx), not when a test imports it.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
