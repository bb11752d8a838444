/**
 * `gs://bucket/prefix?endpoint=URL`: the bucket, the root folder inside it, and an optional API endpoint
 * (a local stand-in or a private endpoint). Without `endpoint` the library's own `STORAGE_EMULATOR_HOST`
 * applies, then Google itself.
 */
import {
  endpointOption,
  parseStoreUrl,
  rejectUrlCredentials,
  UnsupportedStoreUrlError,
} from "@cloudtap/object-store";

export interface GcsLocation {
  readonly bucket: string;
  readonly root: string;
  readonly endpoint?: string;
  readonly display: string;
}

export function parseGcsUrl(url: string): GcsLocation {
  const u = parseStoreUrl(url, "gs://bucket/prefix");
  if (u.protocol !== "gs:") throw new UnsupportedStoreUrlError(url, "not a gs:// URL");
  rejectUrlCredentials(u, "gs://…");
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket))
    throw new UnsupportedStoreUrlError(url, `"${bucket}" is not a GCS bucket name`);
  for (const k of u.searchParams.keys())
    if (k !== "endpoint")
      throw new UnsupportedStoreUrlError(url, `unknown option "${k}" (options: endpoint)`);
  const endpoint = endpointOption(u, url);
  return {
    bucket,
    root: decodeURIComponent(u.pathname),
    ...(endpoint === undefined ? {} : { endpoint }),
    display: url,
  };
}
