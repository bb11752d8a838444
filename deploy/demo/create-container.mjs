#!/usr/bin/env node
/**
 * Creates a blob container in an Azure Blob endpoint (azurite in compose.demo.yaml) from a connection
 * string, with nothing but node's own fetch and crypto (Shared Key authorization), so the demo's init job
 * needs no SDK. An existing container is fine.
 *
 *   AZURE_STORAGE_CONNECTION_STRING=... node create-container.mjs CONTAINER
 *
 * Exit status: 0 created or already there, 1 refused or unreachable, 2 bad arguments.
 */
import { createHmac } from "node:crypto";

const API_VERSION = "2021-08-06";

export function parseConnectionString(text) {
  const fields = new Map();
  for (const part of text.split(";")) {
    const at = part.indexOf("=");
    if (at > 0) fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const account = fields.get("AccountName");
  const key = fields.get("AccountKey");
  if (!account || !key) throw new Error("the connection string needs AccountName and AccountKey");
  const endpoint =
    fields.get("BlobEndpoint") ??
    `${fields.get("DefaultEndpointsProtocol") ?? "https"}://${account}.blob.${fields.get("EndpointSuffix") ?? "core.windows.net"}`;
  return { account, key, endpoint: endpoint.replace(/\/+$/, "") };
}

/** Shared Key signature of a request without a body (Blob service, version 2015-02-21 and later). */
export function sharedKeyAuthorization({ account, key }, method, url, headers) {
  const msHeaders = Object.entries(headers)
    .filter(([name]) => name.toLowerCase().startsWith("x-ms-"))
    .map(([name, value]) => [name.toLowerCase(), String(value).trim()])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}:${value}\n`)
    .join("");
  const query = [...url.searchParams.entries()]
    .map(([name, value]) => [name.toLowerCase(), value])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `\n${name}:${value}`)
    .join("");
  const resource = `/${account}${url.pathname}${query}`;
  // VERB, then Content-Encoding .. Range (11 standard headers, all empty here), then the x-ms- headers.
  const toSign = `${method}\n${"\n".repeat(11)}${msHeaders}${resource}`;
  const signature = createHmac("sha256", Buffer.from(key, "base64")).update(toSign, "utf8").digest("base64");
  return `SharedKey ${account}:${signature}`;
}

export async function createContainer(connectionString, container) {
  const target = parseConnectionString(connectionString);
  const url = new URL(`${target.endpoint}/${encodeURIComponent(container)}?restype=container`);
  const headers = { "x-ms-date": new Date().toUTCString(), "x-ms-version": API_VERSION };
  const response = await fetch(url, {
    method: "PUT",
    headers: { ...headers, authorization: sharedKeyAuthorization(target, "PUT", url, headers) },
  });
  const body = await response.text();
  if (response.status === 201) return "created";
  if (response.status === 409 && body.includes("ContainerAlreadyExists")) return "exists";
  throw new Error(`${url.origin}${url.pathname}: HTTP ${response.status} ${body.slice(0, 300)}`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  const container = process.argv[2];
  const connectionString = process.env.AZURE_STORAGE_CONNECTION_STRING;
  if (!container || !connectionString) {
    process.stderr.write("usage: AZURE_STORAGE_CONNECTION_STRING=... create-container.mjs CONTAINER\n");
    process.exit(2);
  }
  try {
    const outcome = await createContainer(connectionString, container);
    process.stdout.write(`create-container: ${container} ${outcome}\n`);
  } catch (err) {
    process.stderr.write(`create-container: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
