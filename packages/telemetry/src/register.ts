/**
 * Preload: `node --import @cloudtap/telemetry/register services/<name>/src/main.ts`, or the first import of
 * a service's main, so the SDK runs before any application module is evaluated. The service name comes
 * from `OTEL_SERVICE_NAME`, else from the entry file's folder (`services/<name>/...`); the instance from
 * `<SERVICE>_INSTANCE`.
 */
import { startTelemetry } from "./sdk.js";

function serviceOfEntry(entry: string | undefined): string {
  const m = /services[\\/]([^\\/]+)[\\/]/.exec(entry ?? "");
  return m?.[1] ?? "cloudtap";
}

const service = process.env["OTEL_SERVICE_NAME"] || serviceOfEntry(process.argv[1]);
const instance = process.env[`${service.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_INSTANCE`];
startTelemetry({ serviceName: service, ...(instance ? { serviceInstance: instance } : {}) });
