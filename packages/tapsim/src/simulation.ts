/**
 * `runSimulation`: plans a run from the seed, starts the origin servers and the tapper's relays on loopback,
 * runs the connections (`concurrency` at a time, in order of their planned start), records them into CTAP blobs
 * and key logs, and writes the run's manifest to the data store.
 */
import { createHash } from "node:crypto";
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import type { ObjectStore } from "@cloudtap/object-store";
import { Direction } from "@cloudtap/tap-format";
import { BlobRecorder, type GapRule } from "./blob-recorder.js";
import { type ConnectionPlan, planConnections } from "./connection-plan.js";
import { type ConnectionEntry, type ConnectionOutcome, runConnection } from "./connection-runner.js";
import { InvalidSimulationOptionsError } from "./errors.js";
import { KeyLogRecorder } from "./key-log-recorder.js";
import { LoopbackRegistry } from "./loopback-registry.js";
import {
  type FaultFlags,
  MANIFEST_FORMAT,
  type ManifestConnection,
  manifestConnection,
  NON_DETERMINISTIC_FIELDS,
  type SimulationManifest,
} from "./manifest.js";
import { createPopulation } from "./population.js";
import { createPrng } from "./prng.js";
import { createTcpRelay, createUdpRelay, type TcpRelay, type UdpRelay } from "./tap-relay.js";
import { loadTestCredentials, startTrafficServers, type TrafficServers } from "./traffic-servers.js";

export interface SimulationFaults {
  /** Write some blobs twice, the copy under the tapper's next sequence number. */
  readonly duplicateBlobs?: boolean;
  /** Move records into neighbouring blobs and swap some within blobs, so later offsets land in earlier blobs. */
  readonly shuffle?: boolean;
  /** Drop one data record (the manifest says which connection, direction, offset and length). */
  readonly gap?: boolean;
  /** Cut the last blob written in the middle of its last record. */
  readonly truncateLast?: boolean;
  /** Write every key log after the last data blob, under later key names. */
  readonly lateKeys?: boolean;
}

export interface SimulationProgress {
  readonly completedConnections: number;
  readonly totalConnections: number;
  /** Raw bytes (both directions) of the completed connections. */
  readonly rawBytes: number;
}

export interface SimulationOptions {
  /** Where the CTAP blobs and the manifest go. */
  readonly dataStore: ObjectStore;
  /** Where the key logs go (may be the same store). */
  readonly keyStore: ObjectStore;
  readonly connections: number;
  readonly seed: string | number | bigint;
  /** Blob rotation size in bytes. Default 4 MiB. */
  readonly blobSize?: number;
  /** Blob rotation age in virtual nanoseconds. Default 5 s. */
  readonly blobAgeNs?: bigint;
  /** Key prefix in both stores. Default "". */
  readonly prefix?: string;
  /** Virtual time of the first connection (Unix ns). Default 2025-03-14T09:00:00Z. */
  readonly startNs?: bigint;
  /** Mean virtual time between connection starts (Poisson arrivals). Default 50 ms. */
  readonly meanInterArrivalNs?: number;
  /** One or two tapper ids. Default ["gw-fra-1", "gw-ams-2"]. */
  readonly tapperIds?: readonly string[];
  /** Number of simulated users. Default: drawn from the seed, 40 to 80. */
  readonly users?: number;
  readonly compression?: "none" | "gzip";
  readonly faults?: SimulationFaults;
  /** Connections in flight at once. Default 24. */
  readonly concurrency?: number;
  /** Connections per key log batch. Default 16. */
  readonly keyLogBatchConnections?: number;
  /** Real-time budget of one connection. Default 60 s. */
  readonly connectionTimeoutMs?: number;
  /** Names the manifest. Default: derived from the seed and the options that shape the output. */
  readonly runId?: string;
  readonly onProgress?: (progress: SimulationProgress) => void;
  readonly signal?: AbortSignal;
}

/** Things that should not happen, counted; all 0 in a healthy run. */
export interface SimulationCounters {
  /** TCP connections the relay accepted from an address no connection had registered (closed at once). */
  readonly relayStrangers: number;
  /** UDP datagrams the relay dropped because no live flow was registered for their source address. */
  readonly relayStrays: number;
  /** DNS queries the resolver could not parse or answer. */
  readonly dnsMalformed: number;
  /** Records the blob recorder released before the watermark passed them (reorder buffer full). */
  readonly forcedReleases: number;
}

export interface SimulationResult {
  readonly manifest: SimulationManifest;
  /** Key of the manifest in the data store. */
  readonly manifestKey: string;
  /** Real time the run took. */
  readonly elapsedMs: number;
  readonly counters: SimulationCounters;
}

export const DEFAULT_BLOB_SIZE = 4 * 1024 * 1024;
export const DEFAULT_BLOB_AGE_NS = 5_000_000_000n;
export const DEFAULT_START_NS = BigInt(Date.UTC(2025, 2, 14, 9, 0, 0)) * 1_000_000n;
/** The latest `startNs`: a day before the signed 64-bit nanosecond range ends. */
export const MAX_START_NS = 2n ** 63n - 1n - 86_400n * 1_000_000_000n;
export const DEFAULT_MEAN_INTER_ARRIVAL_NS = 50_000_000;
export const DEFAULT_TAPPER_IDS: readonly string[] = ["gw-fra-1", "gw-ams-2"];
export const DEFAULT_CONCURRENCY = 24;
export const MAX_CONNECTIONS = 100_000;

const FAR_FUTURE = 2n ** 63n;

function joinKey(prefix: string, rest: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  return p ? `${p}/${rest}` : rest;
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidSimulationOptionsError(name, `must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** The TCP connection with the most planned response bytes: the gap fault drops a record from its middle. */
function gapRule(plans: readonly ConnectionPlan[]): GapRule | undefined {
  let best: { plan: ConnectionPlan; bytes: number } | undefined;
  for (const plan of plans) {
    if (plan.protocol === "dns") continue;
    const bytes = plan.exchanges.reduce((n, e) => n + e.responseBody.length, 0);
    if (!best || bytes > best.bytes) best = { plan, bytes };
  }
  if (!best) return undefined;
  return {
    connId: best.plan.connId,
    direction: Direction.ServerToClient,
    minOffset: Math.floor(best.bytes / 2),
  };
}

export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const began = performance.now();
  checkInteger("connections", options.connections, 1, MAX_CONNECTIONS);
  const blobSize = options.blobSize ?? DEFAULT_BLOB_SIZE;
  checkInteger("blobSize", blobSize, 1024, 1024 * 1024 * 1024);
  const blobAgeNs = options.blobAgeNs ?? DEFAULT_BLOB_AGE_NS;
  if (blobAgeNs < 1_000_000n) throw new InvalidSimulationOptionsError("blobAgeNs", "must be at least 1 ms");
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  checkInteger("concurrency", concurrency, 1, 256);
  const tapperIds = options.tapperIds ?? DEFAULT_TAPPER_IDS;
  if (tapperIds.length < 1 || tapperIds.length > 2 || new Set(tapperIds).size !== tapperIds.length) {
    throw new InvalidSimulationOptionsError("tapperIds", "must name one or two distinct tappers");
  }
  for (const id of tapperIds) {
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(id))
      throw new InvalidSimulationOptionsError("tapperIds", `"${id}" is not a valid tapper id`);
  }
  const startNs = options.startNs ?? DEFAULT_START_NS;
  // A day before the end of the signed 64-bit nanosecond range (2262): every record time must fit in it.
  if (startNs < 0n || startNs > MAX_START_NS)
    throw new InvalidSimulationOptionsError("startNs", "must be between 1970 and 2262 (Unix ns)");
  const meanInterArrivalNs = options.meanInterArrivalNs ?? DEFAULT_MEAN_INTER_ARRIVAL_NS;
  if (!(meanInterArrivalNs >= 0))
    throw new InvalidSimulationOptionsError("meanInterArrivalNs", "must be >= 0");
  const prefix = options.prefix ?? "";
  const compression = options.compression ?? "none";
  const keyLogBatchConnections = options.keyLogBatchConnections ?? 16;
  checkInteger("keyLogBatchConnections", keyLogBatchConnections, 1, 1_000_000);
  const timeoutMs = options.connectionTimeoutMs ?? 60_000;
  if (options.users !== undefined) checkInteger("users", options.users, 1, 100_000);
  const faults: FaultFlags = {
    duplicateBlobs: options.faults?.duplicateBlobs ?? false,
    shuffle: options.faults?.shuffle ?? false,
    gap: options.faults?.gap ?? false,
    truncateLast: options.faults?.truncateLast ?? false,
    lateKeys: options.faults?.lateKeys ?? false,
  };
  options.signal?.throwIfAborted();

  const seed = String(options.seed);
  const parameters = {
    connections: options.connections,
    blobSize,
    blobAgeNs: blobAgeNs.toString(),
    startNs: startNs.toString(),
    meanInterArrivalNs,
    prefix,
    tapperIds: [...tapperIds],
    compression,
  };
  const runId =
    options.runId ??
    `tapsim-${seed.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40)}-${createHash("sha256")
      .update(JSON.stringify({ seed, parameters, faults, users: options.users ?? null }))
      .digest("hex")
      .slice(0, 10)}`;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(runId))
    throw new InvalidSimulationOptionsError("runId", `"${runId}" is not a valid run id`);

  const root = createPrng(seed);
  const population = createPopulation(
    root.fork("population"),
    options.users !== undefined ? { users: options.users } : {},
  );
  const plans = planConnections(root.fork("plan"), population, {
    connections: options.connections,
    startNs,
    meanInterArrivalNs,
    tapperIds,
    // The default start keeps the seed's connection ids (seeded outputs unchanged); another start salts them.
    ...(startNs === DEFAULT_START_NS ? {} : { connIdSalt: `start-${startNs}` }),
  });
  const gap = faults.gap ? gapRule(plans) : undefined;

  const recorder = new BlobRecorder({
    store: options.dataStore,
    prefix,
    blobSize,
    blobAgeNs,
    epochNs: startNs,
    compression,
    faults: {
      duplicateBlobs: faults.duplicateBlobs,
      shuffle: faults.shuffle,
      truncateLast: faults.truncateLast,
      ...(gap ? { gap } : {}),
    },
    prng: root.fork("faults"),
  });
  const keyLogs = new KeyLogRecorder({
    store: options.keyStore,
    prefix,
    batchConnections: keyLogBatchConnections,
    late: faults.lateKeys,
  });

  const controller = new AbortController();
  // Every connection in flight listens for the abort, up to twice (its teardown, and its DNS exchange or
  // client socket): without room for both, node warns of a listener leak that is none.
  setMaxListeners(2 * concurrency + 16, controller.signal);
  const onAbort = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const registry = new LoopbackRegistry<ConnectionEntry>();
  let servers: TrafficServers | undefined;
  let tcpRelay: TcpRelay | undefined;
  let udpRelay: UdpRelay | undefined;
  const outcomes: ConnectionOutcome[] = new Array(plans.length);
  const credentials = loadTestCredentials();
  try {
    servers = await startTrafficServers({
      lookup: (a) => registry.get(a),
      services: [...population.services, ...population.resolvers],
      credentials,
    });
    tcpRelay = await createTcpRelay((a) => registry.get(a));
    udpRelay = await createUdpRelay((a) => registry.get(a));
    const env = {
      registry,
      clocks: recorder,
      credentials,
      tcpRelayPort: tcpRelay.port,
      udpRelay,
      tlsPort: servers.tlsPort,
      httpPort: servers.httpPort,
      dnsPort: servers.dnsPort,
      timeoutMs,
      signal: controller.signal,
    };

    let next = 0;
    let completed = 0;
    let rawBytes = 0;
    let failure: unknown;
    recorder.setPendingStart(plans[0]!.startNs);
    const worker = async () => {
      while (failure === undefined && next < plans.length) {
        await recorder.waitForCapacity();
        keyLogs.check();
        controller.signal.throwIfAborted();
        if (next >= plans.length) break;
        const i = next++;
        const plan = plans[i]!;
        // runConnection registers the connection's clock before its first await; only then may the recorder
        // assume that nothing older than the next planned start is still to come.
        const running = runConnection(plan, env);
        recorder.setPendingStart(plans[i + 1]?.startNs ?? FAR_FUTURE);
        const outcome = await running;
        outcomes[i] = outcome;
        keyLogs.add(outcome.tappers[0] ?? plan.tapperIds[0]!, plan.startNs, outcome.keyLogLines);
        completed++;
        rawBytes += outcome.raw.c2s.length + outcome.raw.s2c.length;
        options.onProgress?.({ completedConnections: completed, totalConnections: plans.length, rawBytes });
      }
    };
    const workers = Array.from({ length: Math.min(concurrency, plans.length) }, () =>
      worker().catch((err: unknown) => {
        failure ??= err;
        controller.abort(err);
      }),
    );
    await Promise.all(workers);
    if (options.signal?.aborted) throw options.signal.reason;
    if (failure !== undefined) throw failure;

    const report = await recorder.finish();
    // Late keys: named one second after the end of the last data blob, rounded up to a whole second.
    const lateStartNs = (report.lastEndNs / 1_000_000_000n + 2n) * 1_000_000_000n;
    const keyLogsWritten = await keyLogs.finish(lateStartNs);

    const connections: ManifestConnection[] = outcomes.map(manifestConnection);
    const devices = population.users.reduce((n, u) => n + u.devices.length, 0);
    const manifest: SimulationManifest = {
      format: MANIFEST_FORMAT,
      runId,
      seed,
      generator: "@cloudtap/tapsim",
      parameters,
      population: {
        tenants: population.tenants.map((t) => t.id),
        users: population.users.length,
        devices,
      },
      faults: {
        requested: faults,
        ...(faults.duplicateBlobs
          ? {
              duplicateBlobs: report.blobs
                .filter((b) => b.duplicateOf !== undefined)
                .map((b) => ({ key: b.key, duplicateOf: b.duplicateOf! })),
            }
          : {}),
        ...(report.shuffle ? { shuffle: report.shuffle } : {}),
        ...(report.gap ? { gap: report.gap } : {}),
        ...(report.truncation ? { truncateLast: report.truncation } : {}),
        ...(faults.lateKeys ? { lateKeys: { keyTimeNs: lateStartNs.toString() } } : {}),
      },
      nonDeterministic: NON_DETERMINISTIC_FIELDS,
      blobs: {
        data: report.blobs.map((b) => ({
          key: b.key,
          tapperId: b.tapperId,
          sequence: b.sequence.toString(),
          startNs: b.startNs.toString(),
          endNs: b.endNs.toString(),
          records: b.records,
          bytes: b.bytes,
          ...(b.duplicateOf !== undefined ? { duplicateOf: b.duplicateOf } : {}),
        })),
        keyLogs: keyLogsWritten,
      },
      connections,
    };
    const manifestKey = joinKey(prefix, `manifest/${runId}.json`);
    await options.dataStore.write(
      manifestKey,
      new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
    );
    return {
      manifest,
      manifestKey,
      elapsedMs: performance.now() - began,
      counters: {
        relayStrangers: tcpRelay.strangers,
        relayStrays: udpRelay.strays,
        dnsMalformed: servers.dnsMalformed,
        forcedReleases: report.forcedReleases,
      },
    };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (!controller.signal.aborted) controller.abort();
    await Promise.allSettled([servers?.close(), tcpRelay?.close(), udpRelay?.close()]);
  }
}
