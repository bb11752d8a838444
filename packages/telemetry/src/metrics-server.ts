/**
 * The Prometheus scrape endpoint of a service: `GET /metrics` on the address of `<SERVICE>_METRICS_LISTEN`,
 * served from the Prometheus reader of the process's telemetry (sdk.ts), so the numbers are the same
 * instruments OTLP exports. Plain HTTP: Prometheus scrapes inside the mesh's network.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { activeTelemetry, startTelemetry } from "./sdk.js";

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export const METRICS_PATH = "/metrics";

/** Listens on host:port (port 0: any free one); starts telemetry if no preload did. */
export async function serveMetrics(listen: { host: string; port: number }, serviceName: string) {
  const telemetry = activeTelemetry() ?? startTelemetry({ serviceName });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === METRICS_PATH) {
      telemetry.prometheus.getMetricsRequestHandler(req, res);
      return;
    }
    res.statusCode = 404;
    res.setHeader("content-type", "text/plain");
    res.end(`not found: scrape ${METRICS_PATH}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  } satisfies MetricsServer;
}
