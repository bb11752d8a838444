/**
 * The first lines of every service's main: load the config (a bad one is logged with the variables'
 * names and exits 2), name the instance, log the effective config once with secrets redacted, and install
 * the process-wide shutdown (which a supervisor's death starts too, see `exitWithParent`). What follows (stores, NATS, servers) is the service's own wiring.
 */
import { hostname } from "node:os";
import type { ConfigSpec, LoadedConfig } from "./config.js";
import { type CounterRegistry, createCounters } from "./counters.js";
import { exitWithParent, recordExitReason, ServiceExitCode } from "./exit.js";
import { createLogger, type Logger } from "./logger.js";
import { processShutdown, type Shutdown } from "./shutdown.js";

export interface BootedService<S extends ConfigSpec> {
  readonly config: LoadedConfig<S>;
  /** `<SERVICE>_INSTANCE`, or host-pid. */
  readonly instance: string;
  readonly log: Logger;
  readonly shutdown: Shutdown;
  readonly counters: CounterRegistry;
}

export function bootService<S extends ConfigSpec>(
  service: string,
  load: () => LoadedConfig<S>,
  instanceOf: (config: LoadedConfig<S>) => string | undefined,
): BootedService<S> {
  let config: LoadedConfig<S>;
  try {
    config = load();
  } catch (err) {
    createLogger({ service }).error("invalid configuration", { error: err });
    recordExitReason(`invalid configuration: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(ServiceExitCode.BadConfig);
  }
  const instance = instanceOf(config) ?? `${hostname()}-${process.pid}`;
  const log = createLogger({ service, instance });
  log.info("service config", { config: config.redacted(), ...(config.file ? { file: config.file } : {}) });
  const shutdown = processShutdown({ logger: log });
  exitWithParent(shutdown);
  return { config, instance, log, shutdown, counters: createCounters() };
}
