/**
 * A replay on a running local mesh (`cloudtap replay`): a mirror-egress process of its own with the
 * replay's outputs (mutual TLS from the mesh's PKI), then `ReplayService.StartReplay` on a fetcher of the
 * mesh, naming that egress; the mesh's fetchers and stitchers run the window under the replay's run id
 * (docs/mesh.md). `waitUntilDone` follows `GetReplay`; `stop` stops the replay's egress with SIGTERM, which
 * writes out what its time merge holds and flushes and closes its sinks. The state folder keeps
 * `replays/<run>.json` (the egress instance, and whether the replay finished), which `cloudtap status` reads.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type GetReplayResponse, ReplayService } from "@cloudtap/proto";
import {
  checkHealth,
  clientCredentials,
  createClient,
  expectServerIdentity,
  HealthStatus,
  type ServiceClient,
  ServiceIdentity,
} from "@cloudtap/rpc";
import { freePort } from "./free-port.js";
import {
  egressEnvironment,
  type LocalMeshOutputs,
  type MeshInstance,
  MeshService,
  type MeshState,
} from "./local-mesh.js";
import { SupervisedProcess } from "./supervised-process.js";
import { serviceCommand, workspaceRoot } from "./workspace.js";

export const REPLAYS_DIR = "replays";

export interface ReplayPlan {
  readonly sinceNs: bigint;
  readonly untilNs: bigint;
  readonly tapperIds?: readonly string[];
  /** Flow filter rules (as `cloudtap stitch --filter`). */
  readonly flowRules?: readonly string[];
  readonly outputs: LocalMeshOutputs;
  readonly mtu?: number;
  readonly env?: Readonly<Record<string, string>>;
}

/** `replays/<run>.json` of a state folder. */
export interface ReplayStateFile {
  readonly runId: string;
  readonly egress: MeshInstance;
  readonly startedAt: string;
  readonly finished: boolean;
}

/** A replay's progress, as `GetReplay` reports it (64-bit numbers as numbers). */
export interface ReplayProgress {
  readonly runId: string;
  readonly state: string;
  readonly sinceNs: string;
  readonly untilNs: string;
  readonly blobsDone: number;
  readonly blobsQuarantined: number;
  readonly shardsDone: number;
  readonly shardCount: number;
  readonly mirrorEgressAddr: string;
  readonly createdAt: string;
  readonly error: string;
}

function progressOf(r: GetReplayResponse): ReplayProgress {
  return {
    runId: r.runId,
    state: r.state,
    sinceNs: String(r.sinceNs),
    untilNs: String(r.untilNs),
    blobsDone: Number(r.blobsDone),
    blobsQuarantined: Number(r.blobsQuarantined),
    shardsDone: r.shardsDone,
    shardCount: r.shardCount,
    mirrorEgressAddr: r.mirrorEgressAddr,
    createdAt: r.createdAt,
    error: r.error,
  };
}

/** Calls `work` with a ReplayService client of the first fetcher of the mesh that answers. */
async function withReplayClient<T>(
  state: MeshState,
  work: (client: ServiceClient<typeof ReplayService>) => Promise<T>,
): Promise<T> {
  const credentials = await clientCredentials(state.tlsDir, ServiceIdentity.Cli);
  const fetchers = state.instances.filter((i) => i.service === MeshService.Fetcher && i.address !== "");
  if (fetchers.length === 0) throw new Error("the mesh has no fetcher to ask");
  let last: unknown;
  for (const f of fetchers) {
    const client = createClient(ReplayService, f.address, {
      credentials,
      defaultTimeoutMs: 10_000,
      channelOptions: expectServerIdentity(ServiceIdentity.Fetcher),
    });
    try {
      return await work(client);
    } catch (err) {
      last = err;
      if ((err as { category?: string }).category !== "unavailable") throw err;
    } finally {
      client.close();
    }
  }
  throw last;
}

/** Every replay the mesh knows of (`ListReplays` on a fetcher). */
export async function queryReplays(state: MeshState): Promise<ReplayProgress[]> {
  return withReplayClient(state, async (c) => (await c.listReplays({})).replays.map(progressOf));
}

/** The replays of a state folder whose egress is still running (not finished). */
export function runningReplayFiles(stateDir: string): ReplayStateFile[] {
  let names: string[];
  try {
    names = readdirSync(join(stateDir, REPLAYS_DIR));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(".json"))
    .map((n) => JSON.parse(readFileSync(join(stateDir, REPLAYS_DIR, n), "utf8")) as ReplayStateFile)
    .filter((r) => !r.finished);
}

export class LocalReplay {
  private egress: SupervisedProcess | undefined;
  private address = "";
  private runId_ = "";
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly mesh: MeshState,
    private readonly plan: ReplayPlan,
  ) {}

  get runId(): string {
    return this.runId_;
  }

  get logFile(): string {
    return join(this.mesh.stateDir, "logs", `replay-egress-${process.pid}.log`);
  }

  private writeState(finished: boolean): void {
    if (this.runId_ === "") return;
    mkdirSync(join(this.mesh.stateDir, REPLAYS_DIR), { recursive: true, mode: 0o700 });
    const file: ReplayStateFile = {
      runId: this.runId_,
      egress: {
        service: MeshService.MirrorEgress,
        name: `replay-${this.runId_}-egress`,
        address: this.address,
        pid: this.egress?.pid,
        restarts: this.egress?.restarts ?? 0,
      },
      startedAt: this.startedAt,
      finished,
    };
    writeFileSync(
      join(this.mesh.stateDir, REPLAYS_DIR, `${this.runId_}.json`),
      `${JSON.stringify(file, null, 2)}\n`,
      {
        mode: 0o600,
      },
    );
  }

  /** Starts the replay's egress, then the replay; returns its run id. */
  async start(): Promise<string> {
    this.address = `127.0.0.1:${await freePort()}`;
    this.egress = new SupervisedProcess({
      name: "replay-egress",
      command: process.execPath,
      args: serviceCommand(workspaceRoot(), "mirror-egress"),
      env: {
        LOG_LEVEL: "info",
        ...this.plan.env,
        ...egressEnvironment(this.plan.outputs, this.address, this.mesh.tlsDir, this.plan.mtu),
        MIRROR_EGRESS_INSTANCE: `replay-egress-${process.pid}`,
      },
      logFile: this.logFile,
    });
    this.egress.start();
    await this.healthy();
    const r = await withReplayClient(this.mesh, (c) =>
      c.startReplay({
        sinceNs: this.plan.sinceNs,
        untilNs: this.plan.untilNs,
        filters: { tapperIds: [...(this.plan.tapperIds ?? [])], flowRules: [...(this.plan.flowRules ?? [])] },
        mirrorEgressAddr: this.address,
      }),
    );
    this.runId_ = r.runId;
    this.writeState(false);
    return r.runId;
  }

  private async healthy(timeoutMs = 30_000): Promise<void> {
    const credentials = await clientCredentials(this.mesh.tlsDir, ServiceIdentity.Cli);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await checkHealth(this.address, credentials, {
        timeoutMs: 1000,
        channelOptions: expectServerIdentity(ServiceIdentity.MirrorEgress),
      }).catch(() => "unknown");
      if (status === HealthStatus.Serving) return;
      if (Date.now() > deadline)
        throw new Error(
          `the replay's mirror-egress did not become healthy at ${this.address} in ${timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async progress(): Promise<ReplayProgress> {
    return withReplayClient(this.mesh, async (c) => progressOf(await c.getReplay({ runId: this.runId_ })));
  }

  /** Resolves with the final progress once the replay is done; rejects when it failed. */
  async waitUntilDone(
    options: { signal?: AbortSignal; pollMs?: number; onProgress?: (p: ReplayProgress) => void } = {},
  ): Promise<ReplayProgress> {
    for (;;) {
      options.signal?.throwIfAborted();
      const p = await this.progress();
      options.onProgress?.(p);
      if (p.state === "done") return p;
      if (p.state === "failed") throw new Error(`replay ${p.runId} failed: ${p.error}`);
      await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
    }
  }

  /** Stops the replay's egress (its merge written out, its sinks flushed and closed). */
  async stop(): Promise<void> {
    await this.egress?.stop();
    this.writeState(true);
  }
}
