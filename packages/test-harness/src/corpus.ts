/**
 * The third-party TLS interop corpus (captures, key logs, expected decrypted hashes). It lives beside the
 * repository, in `../shared/testdata/tls`, not in it (its licences differ from the project's). Found, in order:
 * 1. `CLOUDTAP_CORPUS_DIR`;
 * 2. `../shared/testdata/tls` beside this checkout;
 * 3. `../shared/testdata/tls` beside the checkout this one was cloned from (a fresh clone in a temporary
 *    folder, as CI makes, finds the corpus of the repository it came from).
 * Tests that need it fail, naming these places, when it is nowhere: they never skip silently.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const RELATIVE = join("..", "shared", "testdata", "tls");

function originCheckout(): string | undefined {
  try {
    const url = execFileSync("git", ["-C", REPO_ROOT, "remote", "get-url", "origin"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const path = url.startsWith("file://") ? fileURLToPath(url) : url;
    return isAbsolute(path) && existsSync(path) ? path.replace(/\/\.git\/?$/, "") : undefined;
  } catch {
    return undefined;
  }
}

function findCorpus(): { dir: string | undefined; tried: string[] } {
  const tried: string[] = [];
  const env = process.env["CLOUDTAP_CORPUS_DIR"];
  const candidates = [env, join(REPO_ROOT, RELATIVE)];
  const origin = originCheckout();
  if (origin) candidates.push(join(origin, RELATIVE));
  for (const c of candidates) {
    if (!c) continue;
    const dir = resolve(c);
    tried.push(dir);
    if (existsSync(join(dir, "manifest.json"))) return { dir: `${dir}/`, tried };
  }
  return { dir: undefined, tried };
}

const found = findCorpus();

/** The corpus folder, with a trailing slash; throws (naming where it looked) when it is missing. */
export function corpusDir(): string {
  if (!found.dir) {
    throw new Error(
      `the TLS interop corpus is missing: looked in ${found.tried.join(", ")}; set CLOUDTAP_CORPUS_DIR to its folder`,
    );
  }
  return found.dir;
}

export interface CorpusCapture {
  readonly file: string;
  readonly path: string;
  /** Path of the key log, when the capture has one outside itself. */
  readonly keyLogPath: string | undefined;
  /** tshark decode-as rules the capture needs (e.g. TLS on port 9000). */
  readonly decodeAs: readonly string[];
}

export function corpusCaptures(): CorpusCapture[] {
  const dir = corpusDir();
  const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, "utf8")) as {
    captures: { file: string; keylog: string | null; decode_as?: string[] | null }[];
  };
  return manifest.captures.map((c) => ({
    file: c.file.replace(/^captures\//, ""),
    path: `${dir}${c.file}`,
    keyLogPath: c.keylog ? `${dir}${c.keylog}` : undefined,
    decodeAs: c.decode_as ?? [],
  }));
}
