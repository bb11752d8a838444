/**
 * `s3://bucket/prefix?endpoint=URL&path_style=true&region=R`: the bucket, the root folder inside it, and
 * the options of an S3-compatible store (MinIO, Ceph, a local emulator): a custom endpoint and path-style
 * addressing (`http://host/bucket/key` instead of `http://bucket.host/key`). Without `endpoint` the SDK's
 * own `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` apply, then AWS itself.
 */
import {
  endpointOption,
  parseStoreUrl,
  rejectUrlCredentials,
  UnsupportedStoreUrlError,
} from "@cloudtap/object-store";

export interface S3Location {
  readonly bucket: string;
  readonly root: string;
  readonly endpoint?: string;
  readonly pathStyle: boolean;
  readonly region?: string;
  /** The URL as reports show it (no credentials are ever in an s3:// URL; options kept). */
  readonly display: string;
}

const OPTIONS = new Set(["endpoint", "path_style", "region"]);

export function parseS3Url(url: string): S3Location {
  const u = parseStoreUrl(url, "s3://bucket/prefix");
  if (u.protocol !== "s3:") throw new UnsupportedStoreUrlError(url, "not an s3:// URL");
  rejectUrlCredentials(u, "s3://…");
  const bucket = u.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new UnsupportedStoreUrlError(url, `"${bucket}" is not an S3 bucket name`);
  for (const k of u.searchParams.keys())
    if (!OPTIONS.has(k))
      throw new UnsupportedStoreUrlError(url, `unknown option "${k}" (options: ${[...OPTIONS].join(", ")})`);
  const endpoint = endpointOption(u, url);
  const pathStyle = u.searchParams.get("path_style");
  if (pathStyle !== null && pathStyle !== "true" && pathStyle !== "false")
    throw new UnsupportedStoreUrlError(url, "path_style is true or false");
  const region = u.searchParams.get("region") ?? undefined;
  return {
    bucket,
    root: decodeURIComponent(u.pathname),
    ...(endpoint === undefined ? {} : { endpoint }),
    pathStyle: pathStyle === "true",
    ...(region === undefined ? {} : { region }),
    display: url,
  };
}
