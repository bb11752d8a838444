/**
 * The AWS credentials file of the vendor's format, `{"access_key_id", "secret_access_key"}` with an
 * optional `session_token` and `region`. Without a file the SDK's default chain applies
 * (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, SSO, container and instance roles).
 */
import { BadCredentialsFileError, readCredentialsText } from "@cloudtap/object-store";

export interface S3CredentialsFile {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly region?: string;
}

export async function readS3Credentials(file: string): Promise<S3CredentialsFile> {
  const text = await readCredentialsText(file);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new BadCredentialsFileError(
      file,
      'not JSON (the AWS format is {"access_key_id", "secret_access_key"})',
    );
  }
  const field = (name: string, required: boolean): string | undefined => {
    const v = json[name];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || v === "")
      throw new BadCredentialsFileError(
        file,
        `"${name}" is ${v === undefined ? "missing" : "not a non-empty string"}`,
      );
    return v;
  };
  const sessionToken = field("session_token", false);
  const region = field("region", false);
  return {
    accessKeyId: field("access_key_id", true)!,
    secretAccessKey: field("secret_access_key", true)!,
    ...(sessionToken === undefined ? {} : { sessionToken }),
    ...(region === undefined ? {} : { region }),
  };
}
