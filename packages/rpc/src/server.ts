/**
 * A grpc-js server with the mesh's defaults: typed services through the adapter, the health service with a
 * SERVING entry per service (and for the server as a whole), keepalive, an optional identity guard per
 * service, and a graceful shutdown with a deadline.
 *
 * Shutdown order: health says NOT_SERVING (and its Watch streams end); new calls are refused (`tryShutdown`) while calls in flight may
 * finish until the deadline; then the signal of every remaining call aborts and the server is forced down.
 */

import type { DescService } from "@bufbuild/protobuf";
import { Health } from "@cloudtap/proto";
import * as grpc from "@grpc/grpc-js";
import { createHealthRegistry, type HealthRegistry, HealthStatus, OVERALL_HEALTH } from "./health.js";
import { adaptService, type HandlerContext, type ServiceHandlers } from "./service-adapter.js";
import { requireIdentity } from "./tls.js";

export interface ServiceRegistration<S extends DescService = DescService> {
  readonly service: S;
  readonly handlers: ServiceHandlers<S>;
  /** When set, only callers whose verified certificate carries one of these identities get through. */
  readonly allowedIdentities?: readonly string[];
}

/** Keeps the handler type tied to its service when services of different types go into one list. */
export function registerService<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
  options: { allowedIdentities?: readonly string[] } = {},
): ServiceRegistration {
  return { service, handlers, ...options } as unknown as ServiceRegistration;
}

export interface RpcServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  readonly credentials: grpc.ServerCredentials;
  readonly services: readonly ServiceRegistration[];
  /** Default: a new registry. Pass one to set statuses from outside (e.g. NOT_SERVING while a dependency is down). */
  readonly health?: HealthRegistry;
  /** Every error a handler failed with, with its cause: log it here (the wire gets the mapped status only). */
  readonly onError?: (err: unknown, context: HandlerContext) => void;
  readonly channelOptions?: grpc.ChannelOptions;
}

/**
/**
 * What a client may send ahead of the server's reading, per stream and per connection (HTTP/2 flow control;
 * grpc-js takes the option on a server through this project's patch of it). HTTP/2's default, 64 KiB, made a
 * stitcher streaming 1 MiB mirror batches wait for a window update every 64 KiB: the mirror hop cost 6.7
 * ms/MiB of CPU at 212 MiB/s, against 5.3 at 341 MiB/s with this (`pnpm bench transport-floor`). 8 MiB is a
 * mirror stream's own bound on unacknowledged bytes (8 batches of at most 1 MiB), so it adds no buffering the
 * egress did not already accept.
 */
export const SERVER_FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

/**
 * Keepalive: a ping every 30 s on an idle connection, dropped after 10 s without an answer; clients may ping
 * every 10 s, so the client defaults of this package are never refused as abusive.
 */
export const DEFAULT_SERVER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  "grpc-node.flow_control_window": SERVER_FLOW_CONTROL_WINDOW,
};

export interface RpcServer {
  /** The bound port (the real one when the address asked for port 0). */
  readonly port: number;
  readonly health: HealthRegistry;
  /**
   * Refuses new calls, lets calls in flight finish for up to `deadlineMs`, then cancels the rest. Resolves
   * once the server is down; `forced` says whether the deadline was reached.
   */
  shutdown(deadlineMs: number): Promise<{ forced: boolean }>;
}

export async function createRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const server = new grpc.Server({ ...DEFAULT_SERVER_CHANNEL_OPTIONS, ...options.channelOptions });
  const health = options.health ?? createHealthRegistry();
  const stopping = new AbortController();
  const adapterOptions = {
    signal: stopping.signal,
    ...(options.onError ? { onError: options.onError } : {}),
  };
  for (const registration of options.services) {
    const allowed = registration.allowedIdentities;
    const { definition, implementation } = adaptService(registration.service, registration.handlers, {
      ...adapterOptions,
      ...(allowed ? { authorize: (context: HandlerContext) => void requireIdentity(context, allowed) } : {}),
    });
    server.addService(definition, implementation);
  }
  const healthService = adaptService(Health, health.handlers, adapterOptions);
  server.addService(healthService.definition, healthService.implementation);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, options.credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  for (const registration of options.services)
    health.set(registration.service.typeName, HealthStatus.Serving);
  health.set(OVERALL_HEALTH, HealthStatus.Serving);

  let down: Promise<{ forced: boolean }> | undefined;
  return {
    port,
    health,
    shutdown(deadlineMs) {
      down ??= new Promise((resolve) => {
        health.close();
        let settled = false;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          stopping.abort();
          server.forceShutdown();
          resolve({ forced: true });
        }, deadlineMs);
        server.tryShutdown(() => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          stopping.abort();
          resolve({ forced: false });
        });
      });
      return down;
    },
  };
}
