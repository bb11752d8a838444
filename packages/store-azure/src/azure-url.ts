/**
 * `azblob://account/container/prefix?endpoint=URL` or `https://<account>.blob.core.windows.net/<container>/
 * <prefix>`: the storage account, the container (`netskope` when the URL names none, as the vendor creates
 * it) and the root folder inside it. `endpoint` is the account's blob endpoint when it is not Azure's own
 * (Azurite: `http://127.0.0.1:10000/<account>`).
 */
import {
  endpointOption,
  parseStoreUrl,
  rejectUrlCredentials,
  UnsupportedStoreUrlError,
} from "@cloudtap/object-store";

export const DEFAULT_CONTAINER = "netskope";

export interface AzureLocation {
  readonly account: string;
  readonly container: string;
  readonly root: string;
  /** The account's blob endpoint, without a trailing slash. */
  readonly endpoint: string;
  /** Whether the endpoint came from the URL (a connection string's own endpoint then does not apply). */
  readonly endpointGiven: boolean;
  readonly display: string;
}

export function isAzureBlobHttpsUrl(url: string): boolean {
  return /^https:\/\/[a-z0-9]{3,24}\.blob\.core\.windows\.net(\/|$)/i.test(url);
}

export function parseAzureUrl(url: string): AzureLocation {
  const u = parseStoreUrl(url, "azblob://account/container/prefix");
  let account: string;
  if (u.protocol === "azblob:") account = u.hostname;
  else if (u.protocol === "https:" && isAzureBlobHttpsUrl(url)) account = u.hostname.split(".")[0]!;
  else
    throw new UnsupportedStoreUrlError(
      url,
      "not an azblob:// or https://<account>.blob.core.windows.net URL",
    );
  rejectUrlCredentials(u, "azblob://…");
  for (const k of u.searchParams.keys())
    if (k !== "endpoint")
      throw new UnsupportedStoreUrlError(
        url.replace(/\?.*$/, "?…"),
        `unknown option "${k}" (options: endpoint; a SAS goes in a credentials file, not the URL)`,
      );
  if (!/^[a-z0-9]{3,24}$/.test(account))
    throw new UnsupportedStoreUrlError(url, `"${account}" is not a storage account name`);
  const [container = "", ...rest] = decodeURIComponent(u.pathname).replace(/^\/+/, "").split("/");
  const name = container === "" ? DEFAULT_CONTAINER : container;
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(name))
    throw new UnsupportedStoreUrlError(url, `"${name}" is not a container name`);
  const endpoint = endpointOption(u, url);
  return {
    account,
    container: name,
    root: rest.join("/"),
    endpoint: (endpoint ?? `https://${account}.blob.core.windows.net`).replace(/\/+$/, ""),
    endpointGiven: endpoint !== undefined,
    display: url,
  };
}
