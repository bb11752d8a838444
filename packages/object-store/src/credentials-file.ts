/** A remote backend's credentials file, read as text: unreadable, it is a `BadCredentialsFileError`. */
import { readFile } from "node:fs/promises";
import { BadCredentialsFileError } from "./errors.js";

export async function readCredentialsText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new BadCredentialsFileError(file, `not readable (${(err as NodeJS.ErrnoException).code ?? err})`, {
      cause: err,
    });
  }
}
