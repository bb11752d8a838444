/**
 * The state file of `cloudtap stitch --follow --state FILE`: JSON, replaced atomically (written to a
 * temporary file beside it, fsynced, renamed over it, the directory fsynced), so a crash at any point leaves
 * the old state or the new one, whole.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname } from "node:path";

export class StateFileError extends Error {
  override readonly name = "StateFileError";
}

/** The state in FILE, or undefined when there is none yet. */
export function loadStateFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new StateFileError(`--state ${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new StateFileError(`--state ${path}: not valid JSON: ${(err as Error).message}`);
  }
}

export async function saveStateFile(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, "w", 0o600);
  try {
    await file.writeFile(`${JSON.stringify(value)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
