export type { S3CredentialsFile } from "./s3-credentials.js";
export { readS3Credentials } from "./s3-credentials.js";
export type { S3StoreOptions } from "./s3-store.js";
export { openS3Store } from "./s3-store.js";
export type { S3Location } from "./s3-url.js";
export { parseS3Url } from "./s3-url.js";
