/**
 * The containers' health probe: asks a server's `grpc.health.v1.Health` once and exits 0 when it answers
 * SERVING, 1 otherwise, with one line saying why. Compose healthchecks and Kubernetes exec probes run it
 * inside the service's own container (no grpc_health_probe binary is shipped), so it presents that
 * container's certificate of the mesh: health is open to any certificate the mesh CA signed.
 *
 *   node health-probe.mjs HOST:PORT [--tls-dir DIR --identity ID] [--server-name ID] [--service NAME] [--timeout MS]
 *
 * Exit status: 0 serving, 1 not serving or unreachable, 2 bad arguments.
 */
import { pathToFileURL } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { isRpcError } from "../errors.js";
import { checkHealth } from "../health.js";
import { clientCredentials, expectServerIdentity } from "../tls.js";

export interface HealthProbeOptions {
  readonly address: string;
  /** Directory made by `createPki` (or the make-pki command); unset: plaintext. */
  readonly tlsDir?: string;
  /** The certificate to present from `tlsDir`. */
  readonly identity?: string;
  /**
   * The identity the server's certificate must name. Default with TLS: `identity`, since the probe runs in
   * the container it checks, with that container's certificate (an IP address is no TLS server name).
   */
  readonly serverName?: string;
  readonly service?: string;
  readonly timeoutMs: number;
}

export class HealthProbeUsageError extends Error {
  override readonly name = "HealthProbeUsageError";
}

export const HEALTH_PROBE_USAGE =
  "usage: health-probe HOST:PORT [--tls-dir DIR --identity ID] [--server-name ID] [--service NAME] [--timeout MS]";

const FLAGS = new Set(["--tls-dir", "--identity", "--server-name", "--service", "--timeout"]);

export function parseHealthProbeArgs(argv: readonly string[]): HealthProbeOptions {
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    if (!FLAGS.has(arg)) throw new HealthProbeUsageError(`unknown option ${arg}`);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith("--"))
      throw new HealthProbeUsageError(`${arg} needs a value`);
    values.set(arg, value);
    i++;
  }
  if (positional.length !== 1) throw new HealthProbeUsageError("exactly one HOST:PORT is needed");
  const address = positional[0]!;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(address))
    throw new HealthProbeUsageError(`${JSON.stringify(address)} is not HOST:PORT`);
  const tlsDir = values.get("--tls-dir");
  const identity = values.get("--identity");
  if ((tlsDir === undefined) !== (identity === undefined))
    throw new HealthProbeUsageError("--tls-dir and --identity go together");
  const timeoutText = values.get("--timeout") ?? "3000";
  const timeoutMs = Number(timeoutText);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new HealthProbeUsageError(`--timeout ${timeoutText} is not a positive number of milliseconds`);
  const serverName = values.get("--server-name");
  const service = values.get("--service");
  return {
    address,
    timeoutMs,
    ...(tlsDir === undefined ? {} : { tlsDir }),
    ...(identity === undefined ? {} : { identity }),
    ...(serverName === undefined ? {} : { serverName }),
    ...(service === undefined ? {} : { service }),
  };
}

export interface HealthProbeResult {
  readonly serving: boolean;
  readonly message: string;
}

/** One health check; never throws for a server that is down (that is a result, not an error). */
export async function probeHealth(options: HealthProbeOptions): Promise<HealthProbeResult> {
  const serverName = options.serverName ?? (options.tlsDir === undefined ? undefined : options.identity);
  const what = `${options.address}${options.service ? ` (${options.service})` : ""}`;
  const channelCredentials =
    options.tlsDir !== undefined && options.identity !== undefined
      ? await clientCredentials(options.tlsDir, options.identity)
      : credentials.createInsecure();
  try {
    const status = await checkHealth(options.address, channelCredentials, {
      timeoutMs: options.timeoutMs,
      ...(options.service === undefined ? {} : { service: options.service }),
      ...(serverName === undefined ? {} : { channelOptions: expectServerIdentity(serverName) }),
    });
    return { serving: status === "serving", message: `${what}: ${status}` };
  } catch (err) {
    const rpc = isRpcError(err) ? err : undefined;
    const detail = rpc ? `${rpc.category}: ${rpc.message}` : String(err);
    return { serving: false, message: `${what}: ${detail}` };
  }
}

async function main(): Promise<void> {
  let options: HealthProbeOptions;
  try {
    options = parseHealthProbeArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof HealthProbeUsageError)) throw err;
    process.stderr.write(`health-probe: ${err.message}\n${HEALTH_PROBE_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const result = await probeHealth(options);
  (result.serving ? process.stdout : process.stderr).write(`health-probe: ${result.message}\n`);
  process.exitCode = result.serving ? 0 : 1;
}

// Run as a program (the bundle in the images, or through tsx), not when a test imports it.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
