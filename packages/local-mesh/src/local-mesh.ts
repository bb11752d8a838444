/**
 * The mesh as local processes (`cloudtap up`): a nats-server with JetStream (unless one is given), one
 * mirror-egress, one key-broker, N stitchers splitting the shards, N fetchers, each a separate OS process
 * configured through its environment exactly as a container would be. Mutual TLS everywhere, from a private
 * CA made in the state folder. Start order follows the dependencies (each waits for the one before to answer
 * its health check); stop order is the reverse of the data flow, so nothing is in flight when a stage goes:
 * fetchers, key-broker, stitchers, mirror-egress (which flushes and closes its sinks), nats-server.
 *
 * The state folder holds `mesh.json` (every instance: service, status address, metrics URL, pid, restarts),
 * the logs of every process, the PKI and JetStream's files; `cloudtap status` reads `mesh.json`.
 *
 * Nothing outlives this process: every service ends when its stdin pipe from here closes, and an orphan
 * watchdog (its own process, `orphan-watchdog.ts`) ends nats-server, and any service still running after
 * a grace, once this process is gone without its ordered stop (SIGKILL, a crash).
 *
 * Ports: every listener binds port 0 on loopback and reports what the kernel chose (service-kit
 * `recordListening`, nats-server's ports file); the mesh records it in `mesh.json`, hands it to the instances
 * started after, and pins it for the instance's restarts. A port found free here and handed over would be
 * free only until someone else took it: a concurrent program's listener, or an outgoing connection's local
 * port from the same range, and the instance then failed its start on every restart.
 *
 * Telemetry: every service instance serves Prometheus metrics on a loopback port of its own
 * (`<SERVICE>_METRICS_LISTEN`, listed in `mesh.json`), and gets this process's `OTEL_*` variables with its
 * own `OTEL_SERVICE_NAME`, so traces go wherever `OTEL_EXPORTER_OTLP_ENDPOINT` (or the plan's
 * `otlpEndpoint`) points; without one, no spans leave the processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { StatusService } from "@cloudtap/proto";
import {
  checkHealth,
  clientCredentials,
  createClient,
  createPki,
  expectServerIdentity,
  HealthStatus,
  ServiceIdentity,
} from "@cloudtap/rpc";
import { type ListenReport, ListenRole, parseListenReport } from "@cloudtap/service-kit";
import { isPermanentExit, MeshInstanceFailedError } from "./errors.js";
import { freePort } from "./free-port.js";
import { defaultRestartDelayMs, type ProcessExit, SupervisedProcess } from "./supervised-process.js";
import { programCommand, serviceCommand, workspaceRoot } from "./workspace.js";

export const MeshService = {
  Nats: "nats-server",
  Fetcher: "fetcher",
  KeyBroker: "key-broker",
  Stitcher: "stitcher",
  MirrorEgress: "mirror-egress",
} as const;
export type MeshService = (typeof MeshService)[keyof typeof MeshService];

/** What mirror-egress writes, in its environment's terms (see services/mirror-egress config). */
export interface LocalMeshOutputs {
  readonly pcap?: readonly string[];
  readonly pcapng?: readonly string[];
  /** `--vxlan` texts ("HOST[:PORT][,vni=N]..."). */
  readonly vxlan?: readonly string[];
  readonly geneve?: readonly string[];
  readonly policyFile?: string;
  readonly remapLog?: string;
  readonly pcapOverIp?: string;
  readonly pcapOverIpSlow?: string;
  readonly outDir?: string;
  readonly outFormat?: string;
  readonly embedKeys?: boolean;
}

export interface LocalMeshPlan {
  /** Where the mesh keeps its state (PKI, JetStream, logs, mesh.json). */
  readonly stateDir: string;
  readonly source: string;
  /** Key store URL; default the source store. */
  readonly keys?: string;
  /** Credentials file of a cloud source store (FETCHER_SOURCE_CREDENTIALS); default the SDK's chain. */
  readonly sourceCredentials?: string;
  /** Credentials file of a cloud key store (default: `sourceCredentials` when keys are the source's). */
  readonly keysCredentials?: string;
  /** Run a key-broker (decryption, keys in pcapng). Default true; false: the original variant, no keys. */
  readonly keyBroker?: boolean;
  readonly prefix?: string;
  readonly sinceNs?: bigint;
  readonly untilNs?: bigint;
  /** One-shot: drain the window, then stop. */
  readonly once: boolean;
  readonly fetchers: number;
  readonly stitchers: number;
  readonly shardCount: number;
  /** The stitchers share the shards by lease (`STITCHER_SHARDS=auto`) instead of fixed ranges. */
  readonly elasticShards?: boolean;
  readonly variant: "original" | "cleartext" | "both";
  readonly filter?: readonly string[];
  readonly mtu?: number;
  readonly outputs: LocalMeshOutputs;
  /** An existing NATS server; default: start one. */
  readonly natsUrl?: string;
  /** Extra environment for every service (log levels, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** OTLP/HTTP endpoint for traces (OTEL_EXPORTER_OTLP_ENDPOINT); default: this process's variable. */
  readonly otlpEndpoint?: string;
}

export interface MeshInstance {
  readonly service: MeshService;
  readonly name: string;
  /** host:port of its StatusService and health ("" for nats-server). */
  readonly address: string;
  /** Its Prometheus scrape URL (absent for nats-server). */
  readonly metrics?: string;
  readonly pid: number | undefined;
  readonly restarts: number;
  /** Its last unexpected exit (status, signal, the reason it wrote), absent while it never died. */
  readonly lastExit?: ProcessExit;
  /** When its next restart is due, while it is down and one is scheduled. */
  readonly restartAt?: string;
}

export interface MeshState {
  readonly stateDir: string;
  readonly tlsDir: string;
  readonly natsUrl: string;
  readonly startedAt: string;
  /** Where the services send traces over OTLP/HTTP (absent: traces off). */
  readonly otlpEndpoint?: string;
  /** The orphan watchdog's pid (it ends the instances if this mesh's process dies without stopping them). */
  readonly watchdogPid?: number;
  readonly instances: readonly MeshInstance[];
}

export interface LocalMeshEvents {
  readonly onRestart?: (name: string, exit: ProcessExit) => void;
  /** An instance exited with a status a restart will not cure (bad configuration, a store it cannot open). */
  readonly onPermanentExit?: (name: string, exit: ProcessExit, restartAt: string | undefined) => void;
  readonly onLog?: (line: string) => void;
}

export const MESH_STATE_FILE = "mesh.json";

interface Running {
  readonly service: MeshService;
  /** host:port of its gRPC server, "" until it reported the port it bound (and for nats-server). */
  address: string;
  metrics?: string;
  readonly process: SupervisedProcess;
  /** The variables its gRPC and metrics listen addresses are set in (services only). */
  readonly listenEnv?: { readonly rpc: string; readonly metrics: string };
  /** Where it reports the ports it bound (services only). */
  readonly listenFile?: string;
}

export class LocalMesh {
  private readonly running: Running[] = [];
  private natsUrl = "";
  private readonly tlsDir: string;
  private readonly stateDir: string;
  private readonly startedAt = new Date().toISOString();
  private stopped = false;
  /** A one-shot run's instance that exited for good: `start` and `waitUntilDone` fail with it. */
  private failure: MeshInstanceFailedError | undefined;
  private watchdog: ChildProcess | undefined;

  constructor(
    private readonly plan: LocalMeshPlan,
    private readonly events: LocalMeshEvents = {},
  ) {
    this.stateDir = resolve(plan.stateDir);
    this.tlsDir = join(this.stateDir, "tls");
  }

  get state(): MeshState {
    const otlpEndpoint = this.otlpEndpoint;
    return {
      stateDir: this.stateDir,
      tlsDir: this.tlsDir,
      natsUrl: this.natsUrl,
      startedAt: this.startedAt,
      ...(otlpEndpoint ? { otlpEndpoint } : {}),
      ...(this.watchdog?.pid ? { watchdogPid: this.watchdog.pid } : {}),
      instances: this.running.map((r) => ({
        service: r.service,
        name: r.process.name,
        address: r.address,
        ...(r.metrics ? { metrics: `http://${r.metrics}${METRICS_PATH}` } : {}),
        pid: r.process.pid,
        restarts: r.process.restarts,
        ...(r.process.lastExit ? { lastExit: r.process.lastExit } : {}),
        ...(r.process.restartAt ? { restartAt: r.process.restartAt } : {}),
      })),
    };
  }

  /** The supervised process of an instance (chaos tests signal it). */
  instance(name: string): SupervisedProcess | undefined {
    return this.running.find((r) => r.process.name === name)?.process;
  }

  private get otlpEndpoint(): string | undefined {
    return this.plan.otlpEndpoint || process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] || undefined;
  }

  /** Replaced whole (a rename), so `cloudtap status` and anything else reading it never sees half a file. */
  private writeState(): void {
    const path = join(this.stateDir, MESH_STATE_FILE);
    writeFileSync(`${path}.tmp`, `${JSON.stringify(this.state, null, 2)}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  /**
   * Starts an instance. A service (`rpcListenEnv`, the variable of its gRPC listen address) is told to listen
   * on port 0 for its gRPC server and its metrics, and to report the ports it bound (`listening` reads them).
   */
  private spawn(
    service: MeshService,
    name: string,
    command: string,
    args: string[],
    env: Record<string, string>,
    rpcListenEnv?: string,
  ) {
    const prefix = SERVICE_PREFIX[service];
    const listenEnv =
      prefix && rpcListenEnv ? { rpc: rpcListenEnv, metrics: `${prefix}METRICS_LISTEN` } : undefined;
    const listen = listenEnv
      ? {
          ...telemetryEnvironment(service, this.otlpEndpoint),
          [listenEnv.rpc]: ANY_LOOPBACK_PORT,
          [listenEnv.metrics]: ANY_LOOPBACK_PORT,
        }
      : {};
    const logFile = join(this.stateDir, "logs", `${name}.log`);
    const listenFile = listenEnv ? join(this.stateDir, "logs", `${name}.listen`) : undefined;
    const process = new SupervisedProcess({
      name,
      command,
      args,
      env: { ...serviceEnvironment(service), ...this.plan.env, ...env, ...listen },
      logFile,
      exitReasonFile: join(this.stateDir, "logs", `${name}.exit`),
      ...(listenFile ? { listenFile } : {}),
      restartPolicy: (exit, restarts) => this.restartDelay(exit, restarts),
      // nats-server cannot watch its stdin: the watchdog terminates it; services end by themselves.
      onStart: (pid) =>
        this.watchdog?.stdin?.write(`${service === MeshService.Nats ? "term" : "wait"} ${pid}\n`),
      onExit: (n, exit) => {
        if (isPermanentExit(exit)) {
          if (this.plan.once) this.failure ??= new MeshInstanceFailedError(n, exit, logFile);
          this.events.onPermanentExit?.(n, exit, process.restartAt);
        }
        this.writeState();
      },
      onRestart: (n, exit) => {
        this.events.onRestart?.(n, exit);
        this.writeState();
      },
    });
    process.start();
    this.running.push({
      service,
      address: "",
      process,
      ...(listenEnv ? { listenEnv } : {}),
      ...(listenFile ? { listenFile } : {}),
    });
    this.writeState();
    return process;
  }

  /**
   * Waits until a service reported the ports it bound, records them (`mesh.json`) and pins them for its
   * restarts, so a restarted instance listens where its peers were told to connect; returns its gRPC address.
   * Binding port 0 in the service, instead of handing it a port found free here, leaves no window in which
   * another program (or an outgoing connection) takes the port first. An instance of a continuous run that
   * exits for good before it listened gets a port found free here, for its later tries.
   */
  private async listening(name: string, timeoutMs = 120_000): Promise<string> {
    const r = this.running.find((x) => x.process.name === name);
    if (!r?.listenFile || !r.listenEnv) throw new Error(`${name} is not a service of this mesh`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.failure;
      const report = readListenReport(r.listenFile);
      const rpc = report?.ports[ListenRole.Rpc];
      const metrics = report?.ports[ListenRole.Metrics];
      // The current process's report only: a restart before it listened removes its predecessor's file.
      if (report && report.pid === r.process.pid && rpc !== undefined && metrics !== undefined)
        return this.pinListen(r, `127.0.0.1:${rpc}`, `127.0.0.1:${metrics}`);
      if (!this.plan.once && isPermanentExit(r.process.lastExit))
        return this.pinListen(r, `127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`);
      if (Date.now() > deadline)
        throw new Error(`${name} did not report the ports it listens on in ${timeoutMs} ms (see its log)`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    }
  }

  private pinListen(r: Running, address: string, metrics: string): string {
    r.address = address;
    r.metrics = metrics;
    r.process.pin({ env: { [r.listenEnv!.rpc]: address, [r.listenEnv!.metrics]: metrics } });
    this.writeState();
    return address;
  }

  /**
   * The restart rule (documented with `cloudtap up`): an exit a restart will not cure (a bad configuration, a
   * store that cannot be opened) is not restarted in a one-shot run, and in a continuous one is retried from
   * 1 s, doubling, up to once a minute (the store may be fixed meanwhile); any other exit is restarted from
   * 250 ms, doubling, up to every 5 s.
   */
  private restartDelay(exit: ProcessExit, restarts: number): number | undefined {
    if (!isPermanentExit(exit)) return defaultRestartDelayMs(restarts);
    if (this.plan.once) return undefined;
    return Math.min(60_000, 1000 * 2 ** Math.min(restarts, 6));
  }

  /**
   * Waits until a service answers its health check as SERVING. A one-shot run's instance that exited for
   * good fails it at once; in a continuous run, one whose last exit was permanent is not waited for (it is
   * retried with its delay; `cloudtap status` shows why it is down).
   */
  private async healthy(name: string, address: string, identity: string, timeoutMs = 120_000): Promise<void> {
    const credentials = await clientCredentials(this.tlsDir, ServiceIdentity.Cli);
    const deadline = Date.now() + timeoutMs;
    const supervised = this.instance(name);
    for (;;) {
      if (this.failure) throw this.failure;
      if (!this.plan.once && isPermanentExit(supervised?.lastExit)) return;
      const status = await checkHealth(address, credentials, {
        timeoutMs: 1000,
        channelOptions: expectServerIdentity(identity),
      }).catch(() => "unknown");
      if (status === HealthStatus.Serving) return;
      if (Date.now() > deadline)
        throw new Error(`${name} did not become healthy at ${address} in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The orphan watchdog (see the module comment); it never keeps this process alive. */
  private startWatchdog(root: string): void {
    const log = openSync(join(this.stateDir, "logs", "orphan-watchdog.log"), "a", 0o600);
    const watchdog = spawn(
      process.execPath,
      programCommand(
        root,
        "orphan-watchdog",
        join(root, "packages", "local-mesh", "src", "orphan-watchdog.ts"),
      ),
      {
        env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin" },
        stdio: ["pipe", log, log],
        detached: true,
      },
    );
    closeSync(log);
    watchdog.stdin?.on("error", () => {});
    watchdog.unref();
    (watchdog.stdin as { unref?: () => void } | null)?.unref?.();
    this.watchdog = watchdog;
  }

  async start(): Promise<void> {
    const p = this.plan;
    mkdirSync(join(this.stateDir, "logs"), { recursive: true, mode: 0o700 });
    this.startWatchdog(workspaceRoot());
    await createPki(this.tlsDir);
    const root = workspaceRoot();
    const node = process.execPath;

    if (p.natsUrl) this.natsUrl = p.natsUrl;
    else {
      // Port -1: nats-server picks one and writes it to its ports file; its restarts keep that port.
      const portsDir = join(this.stateDir, "nats-ports");
      mkdirSync(portsDir, { recursive: true, mode: 0o700 });
      const args = (port: number) => [
        "-a",
        "127.0.0.1",
        "-p",
        String(port),
        "-js",
        "-sd",
        join(this.stateDir, "jetstream"),
        "--ports_file_dir",
        portsDir,
      ];
      const nats = this.spawn(MeshService.Nats, "nats-server", "nats-server", args(-1), {});
      const port = await natsPort(nats, portsDir, 15_000);
      nats.pin({ args: args(port) });
      this.natsUrl = `nats://127.0.0.1:${port}`;
      this.writeState();
      await waitForPort(port, 15_000);
    }
    const common = { LOG_LEVEL: "info" };

    this.spawn(
      MeshService.MirrorEgress,
      "mirror-egress",
      node,
      serviceCommand(root, "mirror-egress"),
      {
        ...common,
        ...egressEnvironment(p.outputs, ANY_LOOPBACK_PORT, this.tlsDir, p.mtu),
        // A restarted egress resumes its capture files and drops the frames it wrote (docs/mesh.md).
        MIRROR_EGRESS_STATE_DIR: join(this.stateDir, "egress"),
      },
      "MIRROR_EGRESS_LISTEN",
    );
    const egressAddr = await this.listening("mirror-egress");
    await this.healthy("mirror-egress", egressAddr, ServiceIdentity.MirrorEgress);

    let keyBrokerAddr: string | undefined;
    const vaultKey = randomBytes(32).toString("hex");
    if (p.keyBroker !== false) {
      this.spawn(
        MeshService.KeyBroker,
        "key-broker",
        node,
        serviceCommand(root, "key-broker"),
        {
          ...common,
          KEY_BROKER_KEYS_STORE: storeUrl(p.keys ?? p.source),
          ...credentialsEnv(
            "KEY_BROKER_KEYS_STORE_CREDENTIALS",
            p.keys ? p.keysCredentials : p.sourceCredentials,
          ),
          ...defaultChainEnvironment(p.keys ?? p.source, p.keys ? p.keysCredentials : p.sourceCredentials),
          ...(p.prefix ? { KEY_BROKER_PREFIX: p.prefix } : {}),
          KEY_BROKER_NATS_URL: this.natsUrl,
          KEY_BROKER_TLS_DIR: this.tlsDir,
          KEY_BROKER_VAULT_KEY: vaultKey,
          KEY_BROKER_POLL_MS: "1000",
        },
        "KEY_BROKER_LISTEN",
      );
      keyBrokerAddr = await this.listening("key-broker");
      await this.healthy("key-broker", keyBrokerAddr, ServiceIdentity.KeyBroker);
    }

    const per = Math.ceil(p.shardCount / p.stitchers);
    for (let i = 0; i < p.stitchers; i++) {
      const first = i * per;
      const last = Math.min(p.shardCount, first + per) - 1;
      if (first > last) break;
      this.spawn(
        MeshService.Stitcher,
        `stitcher-${i + 1}`,
        node,
        serviceCommand(root, "stitcher"),
        {
          ...common,
          STITCHER_NATS_URL: this.natsUrl,
          STITCHER_SHARD_COUNT: String(p.shardCount),
          STITCHER_SHARDS: p.elasticShards ? "auto" : `${first}-${last}`,
          MIRROR_EGRESS_ADDR: egressAddr,
          ...(keyBrokerAddr ? { KEY_BROKER_ADDR: keyBrokerAddr } : {}),
          STITCHER_TLS_DIR: this.tlsDir,
          STITCHER_VARIANT: p.variant,
          STITCHER_INSTANCE: `stitcher-${i + 1}`,
          // Continuous: a quiet shard does not hold the egress's time merge back (a window's end closes it).
          ...(p.once ? {} : { STITCHER_IDLE_AFTER: "2s" }),
          ...(p.mtu ? { STITCHER_MTU: String(p.mtu) } : {}),
          ...(p.filter?.length ? { STITCHER_FILTER: p.filter.join(";") } : {}),
        },
        "STITCHER_STATUS_LISTEN",
      );
      const addr = await this.listening(`stitcher-${i + 1}`);
      await this.healthy(`stitcher-${i + 1}`, addr, ServiceIdentity.Stitcher);
    }

    for (let i = 0; i < p.fetchers; i++) {
      this.spawn(
        MeshService.Fetcher,
        `fetcher-${i + 1}`,
        node,
        serviceCommand(root, "fetcher"),
        {
          ...common,
          FETCHER_SOURCE: storeUrl(p.source),
          ...credentialsEnv("FETCHER_SOURCE_CREDENTIALS", p.sourceCredentials),
          ...defaultChainEnvironment(p.source, p.sourceCredentials),
          ...(p.prefix ? { FETCHER_PREFIX: p.prefix } : {}),
          FETCHER_NATS_URL: this.natsUrl,
          FETCHER_SHARDS: String(p.shardCount),
          FETCHER_ONCE: String(p.once),
          ...(p.sinceNs === undefined ? {} : { FETCHER_SINCE: String(p.sinceNs) }),
          ...(p.untilNs === undefined ? {} : { FETCHER_UNTIL: String(p.untilNs) }),
          FETCHER_TLS_DIR: this.tlsDir,
          FETCHER_INSTANCE: `fetcher-${i + 1}`,
        },
        "FETCHER_STATUS_LISTEN",
      );
    }
    for (const r of this.running.filter((x) => x.service === MeshService.Fetcher))
      await this.healthy(r.process.name, await this.listening(r.process.name), ServiceIdentity.Fetcher);
  }

  /** Every instance's GetStatus (an instance that does not answer is reported with its error). */
  async statuses(): Promise<{ instance: MeshInstance; status?: Record<string, unknown>; error?: string }[]> {
    return queryStatuses(this.state);
  }

  /** One-shot: resolves when every fetcher and stitcher reports `done`. */
  async waitUntilDone(options: { signal?: AbortSignal; pollMs?: number } = {}): Promise<void> {
    for (;;) {
      options.signal?.throwIfAborted();
      if (this.failure) throw this.failure;
      const all = await this.statuses();
      const workers = all.filter(
        (s) => s.instance.service === MeshService.Fetcher || s.instance.service === MeshService.Stitcher,
      );
      if (workers.length > 0 && workers.every((s) => s.status?.["state"] === "done")) return;
      await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
    }
  }

  /** Stops every instance in order (see the module comment). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const order: MeshService[] = [
      MeshService.Fetcher,
      MeshService.KeyBroker,
      MeshService.Stitcher,
      MeshService.MirrorEgress,
      MeshService.Nats,
    ];
    for (const service of order) {
      await Promise.all(this.running.filter((r) => r.service === service).map((r) => r.process.stop()));
    }
    // Everything stopped: the watchdog finds nothing to end and exits.
    this.watchdog?.stdin?.end();
    this.writeState();
  }
}

/** mirror-egress's environment for these outputs (the mesh's and each replay's). */
export function egressEnvironment(
  o: LocalMeshOutputs,
  listen: string,
  tlsDir: string,
  mtu: number | undefined,
): Record<string, string> {
  return {
    MIRROR_EGRESS_LISTEN: listen,
    MIRROR_EGRESS_TLS_DIR: tlsDir,
    ...(o.pcap?.length ? { MIRROR_EGRESS_PCAP: o.pcap.map((f) => resolve(f)).join(",") } : {}),
    ...(o.pcapng?.length ? { MIRROR_EGRESS_PCAPNG: o.pcapng.map((f) => resolve(f)).join(",") } : {}),
    ...(o.vxlan?.length ? { MIRROR_EGRESS_VXLAN: o.vxlan.join(";") } : {}),
    ...(o.geneve?.length ? { MIRROR_EGRESS_GENEVE: o.geneve.join(";") } : {}),
    ...(o.policyFile ? { MIRROR_EGRESS_POLICY: resolve(o.policyFile) } : {}),
    ...(o.remapLog ? { MIRROR_EGRESS_REMAP_LOG: resolve(o.remapLog) } : {}),
    ...(o.pcapOverIp ? { MIRROR_EGRESS_PCAP_OVER_IP: o.pcapOverIp } : {}),
    ...(o.pcapOverIpSlow ? { MIRROR_EGRESS_PCAP_OVER_IP_SLOW: o.pcapOverIpSlow } : {}),
    ...(o.outDir ? { MIRROR_EGRESS_OUT_DIR: resolve(o.outDir) } : {}),
    ...(o.outFormat ? { MIRROR_EGRESS_OUT_FORMAT: o.outFormat } : {}),
    ...(o.embedKeys === false ? { MIRROR_EGRESS_EMBED_KEYS: "false" } : {}),
    ...(mtu ? { MIRROR_EGRESS_MTU: String(mtu) } : {}),
  };
}

const SERVICE_PREFIX: Readonly<Record<MeshService, string | undefined>> = {
  [MeshService.Nats]: undefined,
  [MeshService.Fetcher]: "FETCHER_",
  [MeshService.KeyBroker]: "KEY_BROKER_",
  [MeshService.Stitcher]: "STITCHER_",
  [MeshService.MirrorEgress]: "MIRROR_EGRESS_",
};

/**
 * The variables of this process's environment that belong to a service (`STITCHER_ACK_WAIT=3s` for the
 * stitchers, ...): settings a user tunes are passed on, while what the mesh wires itself (addresses, TLS,
 * shards) is set by the plan and wins.
 */
function serviceEnvironment(service: MeshService): Record<string, string> {
  const prefix = SERVICE_PREFIX[service];
  if (!prefix) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith(prefix) && v !== undefined) out[k] = v;
  return out;
}

/** What a service is told to listen on: the loopback address, a port the kernel picks (`listening`). */
const ANY_LOOPBACK_PORT = "127.0.0.1:0";

/** Its listen file's report, undefined while there is none (not yet written, or removed for a restart). */
function readListenReport(file: string): ListenReport | undefined {
  try {
    return parseListenReport(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * The client port nats-server chose (`-p -1`), from the ports file it writes (`--ports_file_dir`) as
 * `nats-server_<pid>.ports`: `{"nats":["nats://127.0.0.1:PORT"]}`.
 */
async function natsPort(nats: SupervisedProcess, portsDir: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = nats.pid;
    if (pid !== undefined) {
      try {
        const ports = JSON.parse(readFileSync(join(portsDir, `nats-server_${pid}.ports`), "utf8")) as {
          nats?: unknown;
        };
        const url = Array.isArray(ports.nats) ? ports.nats[0] : undefined;
        const port = typeof url === "string" ? Number(new URL(url).port) : Number.NaN;
        if (Number.isInteger(port) && port > 0) return port;
      } catch {
        // Not written yet (or half): look again.
      }
    }
    if (Date.now() > deadline)
      throw new Error(`nats-server did not report its client port in ${timeoutMs} ms (see its log)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The path of every service's Prometheus endpoint. */
export const METRICS_PATH = "/metrics";

/**
 * A service's OpenTelemetry environment: this process's `OTEL_*` variables (sampler, exporters, headers),
 * the endpoint, and the service's own name.
 */
function telemetryEnvironment(
  service: MeshService,
  otlpEndpoint: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("OTEL_") && v !== undefined) out[k] = v;
  if (otlpEndpoint) out["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlpEndpoint;
  out["OTEL_SERVICE_NAME"] = service;
  return out;
}

/** A store argument as a URL a service can open from any working directory. */
function storeUrl(store: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(store) ? store : resolve(store);
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import("node:net");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolveOk) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolveOk(true);
      });
      socket.once("error", () => resolveOk(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answered on 127.0.0.1:${port} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GetStatus of every instance of a mesh state (mutual TLS as the CLI identity). */
export async function queryStatuses(
  state: MeshState,
): Promise<{ instance: MeshInstance; status?: Record<string, unknown>; error?: string }[]> {
  const credentials = await clientCredentials(state.tlsDir, ServiceIdentity.Cli);
  return Promise.all(
    state.instances.map(async (instance) => {
      if (instance.address === "") return { instance };
      const client = createClient(StatusService, instance.address, {
        credentials,
        defaultTimeoutMs: 3000,
        channelOptions: expectServerIdentity(instance.service),
      });
      try {
        const r = await client.getStatus({});
        return {
          instance,
          status: {
            service: r.service,
            instance: r.instance,
            pid: r.pid,
            state: r.state,
            counters: r.counters,
            labels: r.labels,
          },
        };
      } catch (err) {
        return { instance, error: err instanceof Error ? err.message : String(err) };
      } finally {
        client.close();
      }
    }),
  );
}

/**
 * A cloud store opened without a credentials file uses its SDK's environment and default chain (the CLI's
 * store help): the service that opens it gets this process's variables of those chains. A store with a
 * file gets none of them, so a fetcher given --credentials holds nothing the key-broker's chain would use.
 */
function defaultChainEnvironment(store: string, file: string | undefined): Record<string, string> {
  if (file !== undefined || !/^[a-z][a-z0-9+.-]*:\/\//i.test(store) || /^(file|memory):/i.test(store))
    return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && /^(AWS_|AZURE_|GOOGLE_|GCE_|STORAGE_EMULATOR_HOST$|HOME$)/.test(k)) out[k] = v;
  return out;
}

/** A service's credentials-file variable, the path made absolute (services run in their own folder). */
function credentialsEnv(name: string, file: string | undefined): Record<string, string> {
  return file === undefined ? {} : { [name]: resolve(file) };
}
