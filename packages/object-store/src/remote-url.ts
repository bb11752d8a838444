/**
 * The parts of a remote store's URL every backend reads alike (`s3://`, `gs://`, `azblob://`): the URL
 * itself, no credentials in it, and the `endpoint` option of a private or local endpoint.
 */
import { UnsupportedStoreUrlError } from "./errors.js";

/** `url` parsed; `usage` is its form in the error, e.g. "s3://bucket/prefix". */
export function parseStoreUrl(url: string, usage: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new UnsupportedStoreUrlError(url, `not a URL (${usage})`);
  }
}

/** Throws when the URL carries a user or password; `shown` is how the error names the URL (no secret). */
export function rejectUrlCredentials(u: URL, shown: string): void {
  if (u.username || u.password)
    throw new UnsupportedStoreUrlError(shown, "credentials do not go in the URL: use a credentials file");
}

/** The `endpoint` option (an http:// or https:// URL), when given. */
export function endpointOption(u: URL, url: string): string | undefined {
  const endpoint = u.searchParams.get("endpoint") ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\//.test(endpoint))
    throw new UnsupportedStoreUrlError(url, "endpoint must be an http:// or https:// URL");
  return endpoint;
}
