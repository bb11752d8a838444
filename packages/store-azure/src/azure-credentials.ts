/**
 * Azure credentials, in this order: a credentials file (the vendor's `{"access_key"}`, the account coming
 * from the URL; or `{"connection_string"}`, `{"sas_token"}`; or a file holding just a connection string or
 * a SAS token), then the environment as Azure's own tools read it (`AZURE_STORAGE_CONNECTION_STRING`,
 * `AZURE_STORAGE_KEY` with the URL's account, `AZURE_STORAGE_SAS_TOKEN`), then `DefaultAzureCredential`
 * (managed identity, workload identity, the Azure CLI's login).
 */
import { BadCredentialsFileError, readCredentialsText } from "@cloudtap/object-store";

export type AzureCredentials =
  | { readonly kind: "shared-key"; readonly accountKey: string }
  | { readonly kind: "connection-string"; readonly connectionString: string }
  | { readonly kind: "sas"; readonly sasToken: string }
  | { readonly kind: "default-chain" };

function fromText(text: string): AzureCredentials | undefined {
  const t = text.trim();
  if (/(^|;)\s*(AccountKey|SharedAccessSignature|BlobEndpoint|DefaultEndpointsProtocol)=/i.test(t))
    return { kind: "connection-string", connectionString: t };
  if (/^\??(sv|sp|sig|se|st|ss|srt)=/.test(t) && /(^|&)sig=/.test(t.replace(/^\?/, "")))
    return { kind: "sas", sasToken: t.replace(/^\?/, "") };
  return undefined;
}

export async function readAzureCredentials(file: string): Promise<AzureCredentials> {
  const text = await readCredentialsText(file);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  if (json && typeof json === "object") {
    const field = (name: string) =>
      typeof json![name] === "string" && json![name] !== "" ? (json![name] as string) : undefined;
    const key = field("access_key");
    if (key) return { kind: "shared-key", accountKey: key };
    const cs = field("connection_string");
    if (cs) return { kind: "connection-string", connectionString: cs };
    const sas = field("sas_token");
    if (sas) return { kind: "sas", sasToken: sas.replace(/^\?/, "") };
    throw new BadCredentialsFileError(file, 'no "access_key", "connection_string" or "sas_token" field');
  }
  const parsed = fromText(text);
  if (!parsed)
    throw new BadCredentialsFileError(
      file,
      'neither JSON ({"access_key": ...}) nor a connection string nor a SAS token',
    );
  return parsed;
}

/** The environment's credentials, as the Azure CLI reads them, or the default chain. */
export function azureCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): {
  credentials: AzureCredentials;
  source: string;
} {
  if (env["AZURE_STORAGE_CONNECTION_STRING"])
    return {
      credentials: { kind: "connection-string", connectionString: env["AZURE_STORAGE_CONNECTION_STRING"] },
      source: "AZURE_STORAGE_CONNECTION_STRING",
    };
  if (env["AZURE_STORAGE_KEY"])
    return {
      credentials: { kind: "shared-key", accountKey: env["AZURE_STORAGE_KEY"] },
      source: "AZURE_STORAGE_KEY",
    };
  if (env["AZURE_STORAGE_SAS_TOKEN"])
    return {
      credentials: { kind: "sas", sasToken: env["AZURE_STORAGE_SAS_TOKEN"].replace(/^\?/, "") },
      source: "AZURE_STORAGE_SAS_TOKEN",
    };
  return { credentials: { kind: "default-chain" }, source: "DefaultAzureCredential" };
}
