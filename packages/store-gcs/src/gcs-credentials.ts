/**
 * A GCP service-account key file (`"type": "service_account"`, `client_email`, `private_key`, ...), as
 * Google exports it. Without a file the library's Application Default Credentials apply
 * (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials, the metadata server of a GCP instance).
 */
import { BadCredentialsFileError, readCredentialsText } from "@cloudtap/object-store";

export interface GcsServiceAccount {
  readonly type: "service_account";
  readonly client_email: string;
  readonly private_key: string;
  readonly project_id?: string;
  readonly [field: string]: unknown;
}

export async function readGcsCredentials(file: string): Promise<GcsServiceAccount> {
  const text = await readCredentialsText(file);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new BadCredentialsFileError(file, "not JSON (a GCP service-account key file)");
  }
  if (json["type"] !== "service_account")
    throw new BadCredentialsFileError(
      file,
      `"type" is ${JSON.stringify(json["type"])}, not "service_account"`,
    );
  for (const field of ["client_email", "private_key"])
    if (typeof json[field] !== "string" || json[field] === "")
      throw new BadCredentialsFileError(file, `"${field}" is missing`);
  return json as unknown as GcsServiceAccount;
}
