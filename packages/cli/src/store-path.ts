import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** A store or blob path named on the command line that does not exist: the run cannot start (exit 1). */
export class MissingSourceError extends Error {
  override readonly name = "MissingSourceError";
}

/**
 * Checks that a directory store named by a path or file:// URL exists, so that a typo is an error rather
 * than a run over nothing that reports no problems. Other URL schemes are left to their backend.
 */
export function requireExistingStore(flag: string, url: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "file") return;
  const path = scheme === "file" ? fileURLToPath(url) : url;
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new MissingSourceError(`${flag} ${url}: no such file or directory`);
}
