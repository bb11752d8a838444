export type { AzureCredentials } from "./azure-credentials.js";
export { azureCredentialsFromEnv, readAzureCredentials } from "./azure-credentials.js";
export type { AzureStoreOptions } from "./azure-store.js";
export { openAzureStore } from "./azure-store.js";
export type { AzureLocation } from "./azure-url.js";
export { DEFAULT_CONTAINER, isAzureBlobHttpsUrl, parseAzureUrl } from "./azure-url.js";
