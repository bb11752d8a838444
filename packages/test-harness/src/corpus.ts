/** The third-party TLS interop corpus beside the project (captures, key logs, expected decrypted hashes). */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const CORPUS_DIR = fileURLToPath(new URL("../../../../shared/testdata/tls/", import.meta.url));

export interface CorpusCapture {
  readonly file: string;
  readonly path: string;
  /** Path of the key log, when the capture has one outside itself. */
  readonly keyLogPath: string | undefined;
  /** tshark decode-as rules the capture needs (e.g. TLS on port 9000). */
  readonly decodeAs: readonly string[];
}

export function corpusCaptures(): CorpusCapture[] {
  if (!existsSync(CORPUS_DIR))
    throw new Error(`the TLS interop corpus is missing: expected it at ${CORPUS_DIR}`);
  const manifest = JSON.parse(readFileSync(`${CORPUS_DIR}manifest.json`, "utf8")) as {
    captures: { file: string; keylog: string | null; decode_as?: string[] | null }[];
  };
  return manifest.captures.map((c) => ({
    file: c.file.replace(/^captures\//, ""),
    path: `${CORPUS_DIR}${c.file}`,
    keyLogPath: c.keylog ? `${CORPUS_DIR}${c.keylog}` : undefined,
    decodeAs: c.decode_as ?? [],
  }));
}
