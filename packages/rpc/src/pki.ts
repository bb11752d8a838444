/**
 * A private CA and one certificate per identity, made with the `openssl` command-line tool: ECDSA P-256,
 * the identity as CN and as URI SAN `spiffe://cloudtap/<identity>`; certificates of identities that serve
 * also carry DNS SANs `localhost` and `<identity>` (its compose host name) and the IP SAN 127.0.0.1.
 *
 * Files in the directory: `ca.crt`, `ca.key`, `<identity>.crt`, `<identity>.key`. Keys are created mode
 * 0600 before openssl writes them, so no key is ever readable by others, even for a moment.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { SERVICE_IDENTITIES, ServiceIdentity, spiffeId } from "./identity.js";

const run = promisify(execFile);

export interface CreatePkiOptions {
  /** Default: every identity of the mesh. */
  readonly identities?: readonly string[];
  /** Identities whose certificates get server SANs. Default: all but `cloudtap-cli`. */
  readonly servers?: readonly string[];
  /** Extra DNS names for server certificates. */
  readonly extraDnsNames?: readonly string[];
  /** Default 825 (the longest validity clients commonly accept). */
  readonly validityDays?: number;
  /** The openssl binary. Default `openssl` on the PATH. */
  readonly openssl?: string;
}

const IDENTITY_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function certificatePath(dir: string, identity: string): string {
  return join(dir, `${identity}.crt`);
}
export function privateKeyPath(dir: string, identity: string): string {
  return join(dir, `${identity}.key`);
}
export function caCertificatePath(dir: string): string {
  return join(dir, "ca.crt");
}

async function createPrivateFile(path: string): Promise<void> {
  await rm(path, { force: true });
  const handle = await open(path, "wx", 0o600);
  await handle.close();
  await chmod(path, 0o600); // in case the umask took bits away from the mode above
}

async function newKey(openssl: string, path: string): Promise<void> {
  await createPrivateFile(path);
  await run(openssl, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
}

/** Creates (or replaces) the CA and the certificates in `dir`. */
export async function createPki(dir: string, options: CreatePkiOptions = {}): Promise<void> {
  const openssl = options.openssl ?? "openssl";
  const identities = options.identities ?? SERVICE_IDENTITIES;
  const servers = new Set(options.servers ?? identities.filter((id) => id !== ServiceIdentity.Cli));
  const days = String(options.validityDays ?? 825);
  for (const id of identities) {
    if (!IDENTITY_PATTERN.test(id))
      throw new TypeError(`identity ${JSON.stringify(id)} is not a lowercase name`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, "ca.key");
  const caCert = caCertificatePath(dir);
  await newKey(openssl, caKey);
  await run(openssl, [
    "req",
    "-x509",
    "-new",
    "-key",
    caKey,
    "-subj",
    "/CN=cloudtap-ca",
    "-days",
    days,
    "-sha256",
    "-out",
    caCert,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  for (const id of identities) {
    const key = privateKeyPath(dir, id);
    const csr = join(dir, `${id}.csr`);
    const ext = join(dir, `${id}.ext`);
    await newKey(openssl, key);
    await run(openssl, ["req", "-new", "-key", key, "-subj", `/CN=${id}`, "-out", csr]);
    const sans = [`URI:${spiffeId(id)}`];
    if (servers.has(id)) {
      sans.push("DNS:localhost", `DNS:${id}`, "IP:127.0.0.1");
      for (const name of options.extraDnsNames ?? []) sans.push(`DNS:${name}`);
    }
    await writeFile(
      ext,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        `extendedKeyUsage=${servers.has(id) ? "serverAuth,clientAuth" : "clientAuth"}`,
        `subjectAltName=${sans.join(",")}`,
        "",
      ].join("\n"),
    );
    try {
      await run(openssl, [
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        caCert,
        "-CAkey",
        caKey,
        "-set_serial",
        `0x${randomSerial()}`,
        "-days",
        days,
        "-sha256",
        "-extfile",
        ext,
        "-out",
        certificatePath(dir, id),
      ]);
    } finally {
      await rm(csr, { force: true });
      await rm(ext, { force: true });
    }
  }
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and non-zero, as RFC 5280 asks
  return bytes.toString("hex");
}
