/**
 * The standard gRPC health service (grpc.health.v1.Health): a status per service name, `""` standing for
 * the whole server. `Check` answers the current status (NOT_FOUND for a name never registered); `Watch`
 * sends the current status at once (SERVICE_UNKNOWN for an unknown name) and then every change, until the
 * client cancels or the server shuts down.
 */

import { Health, type HealthCheckResponse, HealthCheckResponse_ServingStatus } from "@cloudtap/proto";
import type * as grpc from "@grpc/grpc-js";
import { ErrorCategory, RpcError } from "./errors.js";
import { createClient, type ServiceHandlers } from "./service-adapter.js";

export const HealthStatus = {
  Serving: "serving",
  NotServing: "not-serving",
} as const;
export type HealthStatus = (typeof HealthStatus)[keyof typeof HealthStatus];

/** The name that stands for the whole server. */
export const OVERALL_HEALTH = "";

export interface HealthRegistry {
  /** Sets a service's status (registering it if new) and notifies its watchers. */
  set(service: string, status: HealthStatus): void;
  /** Sets every registered service, and the server as a whole. */
  setAll(status: HealthStatus): void;
  /**
   * At shutdown: every service NOT_SERVING, and every Watch stream ends after sending that, so the server's
   * graceful shutdown is not held up by watchers. Later watches get the current status and end.
   */
  close(): void;
  get(service: string): HealthStatus | undefined;
  /** The grpc.health.v1.Health handlers reading this registry. */
  readonly handlers: ServiceHandlers<typeof Health>;
}

function wireStatus(status: HealthStatus | undefined): HealthCheckResponse_ServingStatus {
  if (status === undefined) return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
  return status === HealthStatus.Serving
    ? HealthCheckResponse_ServingStatus.SERVING
    : HealthCheckResponse_ServingStatus.NOT_SERVING;
}

export function createHealthRegistry(): HealthRegistry {
  const statuses = new Map<string, HealthStatus>();
  const watchers = new Map<string, Set<() => void>>();
  let closed = false;

  function set(service: string, status: HealthStatus): void {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const wake of watchers.get(service) ?? []) wake();
  }

  async function* watch(
    service: string,
    signal: AbortSignal,
  ): AsyncGenerator<{ status: HealthCheckResponse_ServingStatus }> {
    let changed = true;
    let wake: () => void = () => {};
    const notify = () => {
      changed = true;
      wake();
    };
    let listeners = watchers.get(service);
    if (!listeners) {
      listeners = new Set();
      watchers.set(service, listeners);
    }
    listeners.add(notify);
    const onAbort = () => wake();
    signal.addEventListener("abort", onAbort, { once: true });
    let last: HealthCheckResponse_ServingStatus | undefined;
    try {
      while (!signal.aborted) {
        if (changed) {
          changed = false;
          const now = wireStatus(statuses.get(service));
          if (now !== last) {
            last = now;
            yield { status: now };
          }
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      listeners.delete(notify);
      if (listeners.size === 0) watchers.delete(service);
    }
  }

  return {
    set,
    setAll(status) {
      for (const service of [...statuses.keys(), OVERALL_HEALTH]) set(service, status);
    },
    close() {
      closed = true;
      for (const service of [...statuses.keys(), OVERALL_HEALTH]) set(service, HealthStatus.NotServing);
      for (const listeners of watchers.values()) for (const wake of listeners) wake();
    },
    get: (service) => statuses.get(service),
    handlers: {
      check(request) {
        const status = statuses.get(request.service);
        if (status === undefined) {
          throw new RpcError(ErrorCategory.NotFound, `unknown service ${JSON.stringify(request.service)}`);
        }
        return { status: wireStatus(status) };
      },
      watch: (request, context) => watch(request.service, context.signal),
    },
  };
}

export interface CheckHealthOptions {
  /** The service to ask about; default the whole server. */
  readonly service?: string;
  readonly timeoutMs?: number;
  /** e.g. `grpc.ssl_target_name_override`: the identity the server's certificate must name. */
  readonly channelOptions?: grpc.ChannelOptions;
}

/** Asks a server's health service once. Resolves with the status, rejects with an `RpcError`. */
export async function checkHealth(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: CheckHealthOptions = {},
): Promise<HealthStatus | "unknown"> {
  const client = createClient(Health, address, {
    credentials,
    defaultTimeoutMs: options.timeoutMs ?? 5000,
    ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
  });
  try {
    const response: HealthCheckResponse = await client.check({ service: options.service ?? OVERALL_HEALTH });
    switch (response.status) {
      case HealthCheckResponse_ServingStatus.SERVING:
        return HealthStatus.Serving;
      case HealthCheckResponse_ServingStatus.NOT_SERVING:
        return HealthStatus.NotServing;
      default:
        return "unknown";
    }
  } finally {
    client.close();
  }
}
