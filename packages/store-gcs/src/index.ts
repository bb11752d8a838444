export type { GcsServiceAccount } from "./gcs-credentials.js";
export { readGcsCredentials } from "./gcs-credentials.js";
export type { GcsStoreOptions } from "./gcs-store.js";
export { openGcsStore } from "./gcs-store.js";
export type { GcsLocation } from "./gcs-url.js";
export { parseGcsUrl } from "./gcs-url.js";
