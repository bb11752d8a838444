/**
 * The deployment files, checked offline: every compose combination through `docker compose config` (or
 * Debian's docker-compose) and the compose-spec schema, with the stack's promises read from the merged
 * model (non-root, read-only, limits, healthchecks over grpc.health.v1, who shares a network with whom);
 * the Dockerfile through a linter; the Kubernetes manifests rendered by `kubectl kustomize` and every object
 * validated against its schema (kubernetes-models; cert-manager and KEDA from their CRDs); the image's
 * programs (deploy/build-bundles.mjs) started with the very environment compose gives them, each answering
 * the health probe the healthcheck runs. The compose stack in containers needs a Docker engine: that test
 * skips, saying so, when none answers.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type NatsServer, startAzurite, startNatsServer } from "@cloudtap/test-harness";
import { validate as validateDockerfileSyntax } from "dockerfile-utils";
import {
  composeSchemaProblems,
  deployDir,
  dockerfileStages,
  findCompose,
  type KubeObject,
  lintDockerfile,
  readYaml,
  readYamlStream,
  repoRoot,
  runCommand,
  validateKubeObject,
} from "./deploy-checks.js";

const OVERLAYS = ["compose.observability.yaml", "compose.demo.yaml", "compose.cloud.yaml"] as const;
const MESH = ["fetcher", "key-broker", "stitcher-a", "stitcher-b", "mirror-egress"] as const;
const IDENTITY: Record<(typeof MESH)[number], string> = {
  fetcher: "fetcher",
  "key-broker": "key-broker",
  "stitcher-a": "stitcher",
  "stitcher-b": "stitcher",
  "mirror-egress": "mirror-egress",
};

interface ComposeService {
  readonly image?: string;
  readonly user?: string;
  readonly read_only?: boolean;
  readonly mem_limit?: string | number;
  readonly restart?: string;
  readonly environment?: Record<string, string | null>;
  readonly healthcheck?: { readonly test: readonly string[] };
  readonly depends_on?: Record<string, { readonly condition: string }>;
  readonly networks?: Record<string, unknown>;
  readonly build?: { readonly target?: string; readonly dockerfile?: string };
  readonly cap_drop?: readonly string[];
}
interface ComposeModel {
  readonly services: Record<string, ComposeService>;
  readonly networks?: Record<string, { readonly internal?: boolean; readonly name?: string }>;
}

/** Every subset of the overlays, each on top of compose.yaml. */
function combinations(): string[][] {
  const out: string[][] = [];
  for (let mask = 0; mask < 1 << OVERLAYS.length; mask++)
    out.push(["compose.yaml", ...OVERLAYS.filter((_, i) => mask & (1 << i))]);
  return out;
}

function shardsOf(range: string): number[] {
  const m = /^(\d+)-(\d+)$/.exec(range);
  assert.ok(m, `shard range ${range}`);
  const out: number[] = [];
  for (let s = Number(m[1]); s <= Number(m[2]); s++) out.push(s);
  return out;
}

describe("deploy - compose", () => {
  let compose: Awaited<ReturnType<typeof findCompose>>;
  let work: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    compose = await findCompose();
    work = mkdtempSync(join(tmpdir(), "deploy-compose-"));
    writeFileSync(
      join(work, "store.json"),
      '{"access_key_id":"AKIAEXAMPLE","secret_access_key":"example"}\n',
    );
    env = {
      ...process.env,
      KEY_BROKER_VAULT_KEY: "ab".repeat(32),
      CLOUDTAP_CREDENTIALS: join(work, "store.json"),
      CLOUDTAP_KEYS_CREDENTIALS: join(work, "store.json"),
    };
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const config = async (files: readonly string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    assert.ok(
      compose,
      "no compose: install the compose plugin or Debian's docker-compose (scripts/bootstrap.sh)",
    );
    return runCommand(compose.file, [...compose.prefix, ...files.flatMap((f) => ["-f", f]), "config"], {
      cwd: deployDir,
      env: { ...env, ...extraEnv },
    });
  };

  it("deploy - compose: every file is a valid compose document by the compose-spec schema", () => {
    for (const file of ["compose.yaml", ...OVERLAYS]) {
      const problems = composeSchemaProblems(readYaml(readFileSync(join(deployDir, file), "utf8")));
      assert.deepEqual(problems, [], file);
    }
    // The schema check can fail: a wrong type and an unknown key are reported.
    const bad = composeSchemaProblems({ services: { x: { read_only: ["yes"], restartt: "always" } } });
    assert.ok(bad.length >= 2, JSON.stringify(bad));
  });

  for (const files of combinations()) {
    it(`deploy - compose: ${files.join(" + ")} validates and keeps the stack's rules`, async () => {
      const r = await config(files);
      assert.equal(r.code, 0, `${compose?.name} config failed:\n${r.stderr}`);
      const model = readYaml(r.stdout) as ComposeModel;
      assert.deepEqual(composeSchemaProblems(model), [], "the merged model against the compose-spec schema");
      const { services } = model;

      for (const name of MESH) {
        const s = services[name];
        assert.ok(s, `service ${name}`);
        assert.equal(s.user, "1000:1000", `${name} runs as the non-root user`);
        assert.equal(s.read_only, true, `${name} has a read-only root file system`);
        assert.ok(s.mem_limit, `${name} has a memory limit`);
        assert.equal(s.restart, "unless-stopped", `${name} restarts`);
        assert.deepEqual(s.cap_drop, ["ALL"], `${name} drops every capability`);
        // The healthcheck asks grpc.health.v1 with the container's own certificate.
        const test = s.healthcheck?.test ?? [];
        assert.deepEqual(test.slice(0, 3), ["CMD", "node", "/app/health-probe.mjs"], `${name} healthcheck`);
        assert.deepEqual(test.slice(4), ["--tls-dir", "/tls", "--identity", IDENTITY[name]]);
        assert.ok(s.build?.target === undefined || s.build.dockerfile === "deploy/Dockerfile");
      }
      for (const stitcher of ["stitcher-a", "stitcher-b"]) {
        const deps = services[stitcher]!.depends_on ?? {};
        for (const peer of ["nats", "key-broker", "mirror-egress"])
          assert.equal(deps[peer]?.condition, "service_healthy", `${stitcher} waits for ${peer}`);
      }
      assert.equal(services.fetcher!.depends_on?.nats?.condition, "service_healthy");

      // Each shard has exactly one stitcher.
      const shardCount = Number(services["stitcher-a"]!.environment!.STITCHER_SHARD_COUNT);
      const owned = ["stitcher-a", "stitcher-b"].flatMap((n) =>
        shardsOf(String(services[n]!.environment!.STITCHER_SHARDS)),
      );
      assert.deepEqual(
        owned.sort((a, b) => a - b),
        Array.from({ length: shardCount }, (_, i) => i),
      );

      // Networks: only mirror-egress is on the NDR's network; only stitchers share one with the key-broker
      // (NATS aside, which only answers); mirror-egress shares none with NATS or the key-broker.
      const members = new Map<string, string[]>();
      for (const [name, s] of Object.entries(services))
        for (const net of Object.keys(s.networks ?? {}))
          members.set(net, [...(members.get(net) ?? []), name]);
      assert.deepEqual(members.get("ndr"), ["mirror-egress"]);
      const besideKeyBroker = new Set([...members.values()].filter((m) => m.includes("key-broker")).flat());
      besideKeyBroker.delete("key-broker");
      besideKeyBroker.delete("nats");
      // The key-broker's telemetry network: the collector only receives, Prometheus only scrapes /metrics.
      besideKeyBroker.delete("otel-collector");
      besideKeyBroker.delete("prometheus");
      if (files.includes("compose.demo.yaml")) {
        // The demo's store network: the object store and its two jobs, which hold no certificate.
        for (const n of ["azurite", "demo-init", "demo-simulator", "fetcher"]) besideKeyBroker.delete(n);
        // fetcher and key-broker both reach the object store, as they do without the demo (network store).
      } else {
        besideKeyBroker.delete("fetcher"); // the store network: both reach the object store
      }
      for (const n of besideKeyBroker)
        assert.ok(n.startsWith("stitcher-"), `${n} shares a network with the key-broker`);
      for (const [net, m] of members) {
        if (net.startsWith("telemetry-")) {
          // A service's own way to the collector and Prometheus: that service (both stitchers on theirs) and them.
          const own = net.slice("telemetry-".length);
          assert.deepEqual(
            m.filter((n) => n !== "otel-collector" && n !== "prometheus" && n.replace(/-[ab]$/, "") !== own),
            [],
            net,
          );
          continue;
        }
        if (m.includes("fetcher") && m.includes("key-broker")) assert.equal(net, "store");
        if (m.includes("mirror-egress")) assert.ok(!m.includes("nats") && !m.includes("key-broker"), net);
      }
      for (const net of ["nats-fetcher", "nats-keys", "nats-stitch", "keys", "mirror"])
        assert.equal(model.networks?.[net]?.internal, true, `${net} is internal`);
    });
  }

  it("deploy - compose: a missing vault key, missing credentials and a dangling dependency are refused", async () => {
    const noKey = await config(["compose.yaml"], { KEY_BROKER_VAULT_KEY: "" });
    assert.notEqual(noKey.code, 0);
    assert.match(noKey.stderr, /KEY_BROKER_VAULT_KEY/);
    const noCredentials = await config(["compose.yaml", "compose.cloud.yaml"], { CLOUDTAP_CREDENTIALS: "" });
    assert.notEqual(noCredentials.code, 0);
    assert.match(noCredentials.stderr, /CLOUDTAP_CREDENTIALS/);
    const dangling = join(work, "dangling.yaml");
    writeFileSync(
      dangling,
      "services:\n  fetcher:\n    depends_on:\n      nope:\n        condition: service_healthy\n",
    );
    const r = await config(["compose.yaml", dangling]);
    assert.notEqual(r.code, 0, "a dependency on a service that does not exist");
  });

  it("deploy - compose: .env is the one table: every variable the files use is set there", () => {
    const envFile = readFileSync(join(deployDir, ".env"), "utf8");
    const defined = new Set(
      envFile
        .split("\n")
        .map((l) => /^([A-Z0-9_]+)=/.exec(l)?.[1])
        .filter((n): n is string => n !== undefined),
    );
    for (const file of ["compose.yaml", ...OVERLAYS]) {
      const text = readFileSync(join(deployDir, file), "utf8")
        .split("\n")
        .filter((l) => !l.trimStart().startsWith("#"))
        .join("\n");
      for (const m of text.matchAll(/\$\{([A-Z0-9_]+)/g))
        assert.ok(defined.has(m[1]!), `${file} uses \${${m[1]}}, which deploy/.env does not list`);
    }
  });
});

describe("deploy - Dockerfile", () => {
  const dockerfile = readFileSync(join(deployDir, "Dockerfile"), "utf8");

  it("deploy - Dockerfile: no syntax problem (dockerfile-utils, every check at error level)", () => {
    const problems = validateDockerfileSyntax(dockerfile, {
      deprecatedMaintainer: 1,
      emptyContinuationLine: 1,
      instructionCasing: 1,
      instructionCmdMultiple: 1,
      instructionEntrypointMultiple: 1,
      instructionHealthcheckMultiple: 1,
      instructionJSONInSingleQuotes: 1,
      instructionWorkdirRelative: 1,
    } as Parameters<typeof validateDockerfileSyntax>[1]);
    assert.deepEqual(
      problems.map((p) => `${p.range.start.line + 1}: ${p.message}`),
      [],
    );
  });

  it("deploy - Dockerfile: hadolint's rules that matter hold (and each rule fires on a bad file)", () => {
    assert.deepEqual(lintDockerfile(dockerfile), []);
    const bad = [
      "FROM node:latest AS a",
      "FROM debian",
      "WORKDIR app",
      "ADD . /src",
      "RUN cd /src && sudo make",
      "RUN curl x | sh",
      "RUN apt-get update && apt-get install curl",
      "RUN npm install -g pnpm",
      "CMD node a.js",
    ].join("\n");
    const rules = new Set(lintDockerfile(bad).map((f) => f.rule));
    for (const rule of [
      "DL3007",
      "DL3006",
      "DL3000",
      "DL3020",
      "DL3003",
      "DL3004",
      "DL4006",
      "DL3008",
      "DL3009",
    ])
      assert.ok(rules.has(rule), `${rule} fires`);
    for (const rule of ["DL3014", "DL3015", "DL3016", "DL3025", "DL3002"])
      assert.ok(rules.has(rule), `${rule} fires`);
  });

  it("deploy - Dockerfile: every target compose builds exists and copies the bundle build-bundles.mjs makes", async () => {
    const stages = dockerfileStages(dockerfile);
    const compose = readYaml(readFileSync(join(deployDir, "compose.yaml"), "utf8")) as ComposeModel;
    const targets = new Set(
      Object.values(compose.services)
        .map((s) => s.build?.target)
        .filter((t): t is string => t !== undefined),
    );
    for (const t of targets) assert.ok(stages.includes(t), `stage ${t}`);
    const { programs } = (await import(join(deployDir, "build-bundles.mjs"))) as {
      programs: Record<string, string>;
    };
    for (const name of Object.keys(programs))
      assert.match(dockerfile, new RegExp(`/out/app/${name}\\.mjs`), `the image copies ${name}.mjs`);
    const ignore = readFileSync(join(repoRoot, ".dockerignore"), "utf8");
    for (const entry of ["**/node_modules", "**/build", ".git"]) assert.ok(ignore.includes(entry), entry);
  });
});

describe("deploy - Kubernetes", () => {
  let objects: KubeObject[] = [];
  let withCredentials: KubeObject[] = [];
  let kubectl = true;
  before(async () => {
    const r = await runCommand("kubectl", ["kustomize", join(deployDir, "k8s")]);
    if (r.code === -1 && /ENOENT/.test(r.stderr)) {
      kubectl = false;
      return;
    }
    assert.equal(r.code, 0, `kubectl kustomize failed:\n${r.stderr}`);
    objects = readYamlStream(r.stdout) as KubeObject[];
    const o = await runCommand("kubectl", ["kustomize", join(deployDir, "k8s/overlays/store-credentials")]);
    assert.equal(o.code, 0, `kubectl kustomize of the credentials overlay failed:\n${o.stderr}`);
    withCredentials = readYamlStream(o.stdout) as KubeObject[];
  });

  it("deploy - Kubernetes: kustomize renders, and every object validates against its schema", async (t) => {
    if (!kubectl) return t.skip("kubectl is not installed");
    assert.ok(objects.length >= 25, `${objects.length} objects`);
    for (const obj of [...objects, ...withCredentials]) await validateKubeObject(obj);
    // The overlay gives the fetcher and the key-broker their credential files, and changes nothing else.
    assert.equal(withCredentials.length, objects.length);
    const envOf = (list: KubeObject[], name: string) =>
      (
        list.find((x) => x.kind === "Deployment" && x.metadata.name === name)!.spec as {
          template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
        }
      ).template.spec.containers[0]!.env;
    assert.equal(
      envOf(withCredentials, "fetcher").find((e) => e.name === "FETCHER_SOURCE_CREDENTIALS")?.value,
      "/credentials/store.json",
    );
    assert.equal(
      envOf(withCredentials, "key-broker").find((e) => e.name === "KEY_BROKER_KEYS_STORE_CREDENTIALS")?.value,
      "/credentials/store.json",
    );
    assert.ok(!envOf(objects, "fetcher").some((e) => e.name === "FETCHER_SOURCE_CREDENTIALS"));
    const kinds = new Set(objects.map((o) => o.kind));
    for (const k of ["Deployment", "Service", "NetworkPolicy", "ScaledObject", "Certificate", "Issuer"])
      assert.ok(kinds.has(k), k);
    // Validation can fail: a wrong type and a missing required field are refused.
    const deployment = objects.find((o) => o.kind === "Deployment")!;
    await assert.rejects(validateKubeObject({ ...deployment, spec: { replicas: "two" } } as KubeObject));
    const scaled = objects.find((o) => o.kind === "ScaledObject")!;
    await assert.rejects(
      validateKubeObject({
        ...scaled,
        spec: { ...(scaled.spec as object), minReplicaCount: "none" },
      } as KubeObject),
    );
  });

  it("deploy - Kubernetes: stitcher groups own every shard once, and KEDA watches exactly their consumers", (t) => {
    if (!kubectl) return t.skip("kubectl is not installed");
    interface Container {
      env?: {
        name: string;
        value?: string;
        valueFrom?: { configMapKeyRef?: { name: string; key: string } };
      }[];
      securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
      readinessProbe?: { exec?: { command: string[] } };
      livenessProbe?: { exec?: { command: string[] } };
    }
    interface DeploymentSpec {
      replicas?: number;
      strategy?: { type: string };
      template: { spec: { containers: Container[]; securityContext?: { runAsNonRoot?: boolean } } };
    }
    const configMap = objects.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("cloudtap-mesh"),
    )!;
    const shardCount = Number((configMap as unknown as { data: Record<string, string> }).data.SHARDS);
    const deployments = objects.filter((o) => o.kind === "Deployment");
    for (const d of deployments) {
      const spec = d.spec as DeploymentSpec;
      assert.equal(spec.template.spec.securityContext?.runAsNonRoot, true, `${d.metadata.name} non-root`);
      for (const c of spec.template.spec.containers) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, d.metadata.name);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, d.metadata.name);
        for (const probe of [c.readinessProbe, c.livenessProbe])
          assert.deepEqual(
            probe?.exec?.command.slice(0, 2),
            ["node", "/app/health-probe.mjs"],
            d.metadata.name,
          );
      }
    }
    const stitchers = deployments.filter((d) => d.metadata.labels?.["app.kubernetes.io/name"] === "stitcher");
    const owned: number[] = [];
    const scaled = objects.filter((o) => o.kind === "ScaledObject");
    for (const d of stitchers) {
      const spec = d.spec as DeploymentSpec;
      assert.equal(spec.strategy?.type, "Recreate", `${d.metadata.name}: two pods never overlap on a shard`);
      const range = spec.template.spec.containers[0]!.env!.find((e) => e.name === "STITCHER_SHARDS")!.value!;
      const shards = shardsOf(range);
      owned.push(...shards);
      const so = scaled.find(
        (s) => (s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === d.metadata.name,
      );
      assert.ok(so, `a ScaledObject scales ${d.metadata.name}`);
      const soSpec = so.spec as {
        maxReplicaCount: number;
        triggers: { type: string; metadata: { stream: string; consumer: string } }[];
      };
      assert.equal(soSpec.maxReplicaCount, 1, "at most one stitcher per shard");
      assert.deepEqual(
        soSpec.triggers.map((tr) => `${tr.type} ${tr.metadata.stream} ${tr.metadata.consumer}`),
        shards.map((s) => `nats-jetstream CTAP_CHUNKS stitch-live-${s}`),
      );
    }
    assert.equal(scaled.length, stitchers.length);
    assert.deepEqual(
      owned.sort((a, b) => a - b),
      Array.from({ length: shardCount }, (_, i) => i),
    );
  });

  it("deploy - Kubernetes: only mirror-egress reaches the NDR, only stitchers reach the key-broker", (t) => {
    if (!kubectl) return t.skip("kubectl is not installed");
    interface Peer {
      podSelector?: { matchLabels?: Record<string, string> };
      namespaceSelector?: unknown;
      ipBlock?: { cidr: string; except?: string[] };
    }
    interface Rule {
      to?: Peer[];
      from?: Peer[];
      ports?: { protocol?: string; port: number }[];
    }
    interface PolicySpec {
      podSelector: {
        matchLabels?: Record<string, string>;
        matchExpressions?: { key: string; operator: string; values: string[] }[];
      };
      policyTypes: string[];
      ingress?: Rule[];
      egress?: Rule[];
    }
    const policies = objects.filter((o) => o.kind === "NetworkPolicy");
    const selects = (spec: PolicySpec, app: string) => {
      const s = spec.podSelector;
      if (!s.matchLabels && !s.matchExpressions) return true;
      if (s.matchLabels && s.matchLabels["app.kubernetes.io/name"] !== app) return false;
      return (s.matchExpressions ?? []).every((e) => e.operator === "In" && e.values.includes(app));
    };
    const deny = policies.find((p) => p.metadata.name === "default-deny")!.spec as PolicySpec;
    assert.deepEqual(deny.policyTypes, ["Ingress", "Egress"]);
    assert.deepEqual(deny.podSelector, {});
    for (const app of ["fetcher", "key-broker", "stitcher", "mirror-egress"]) {
      const egress = policies
        .map((p) => p.spec as PolicySpec)
        .filter((s) => selects(s, app))
        .flatMap((s) => s.egress ?? []);
      // Egress to the NDR: UDP tunnels into a private range.
      const toNdr = egress.some((r) =>
        (r.to ?? []).some(
          (peer) => peer.ipBlock && /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.)/.test(peer.ipBlock.cidr),
        ),
      );
      assert.equal(toNdr, app === "mirror-egress", `${app} reaches the NDR's range`);
      for (const r of egress)
        for (const peer of r.to ?? [])
          if (peer.ipBlock?.cidr === "0.0.0.0/0")
            assert.deepEqual(peer.ipBlock.except?.slice(0, 3), [
              "10.0.0.0/8",
              "172.16.0.0/12",
              "192.168.0.0/16",
            ]);
    }
    const toKeyBroker = policies
      .map((p) => p.spec as PolicySpec)
      .filter((s) => s.podSelector.matchLabels?.["app.kubernetes.io/name"] === "key-broker")
      .flatMap((s) => s.ingress ?? []);
    assert.ok(toKeyBroker.length > 0);
    for (const r of toKeyBroker)
      assert.deepEqual(
        r.from?.map((p) => p.podSelector?.matchLabels),
        [{ "app.kubernetes.io/name": "stitcher" }],
      );
  });

  it("deploy - Kubernetes: the NATS chart values enable JetStream on file storage and monitoring", () => {
    const values = readYaml(readFileSync(join(deployDir, "k8s/nats/values.yaml"), "utf8")) as {
      config: {
        jetstream: { enabled: boolean; fileStore: { enabled: boolean } };
        monitor: { enabled: boolean };
      };
    };
    assert.equal(values.config.jetstream.enabled, true);
    assert.equal(values.config.jetstream.fileStore.enabled, true);
    assert.equal(values.config.monitor.enabled, true);
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** azurite's published development account (compose.demo.yaml uses it; not a secret). */
const DEMO_ACCOUNT = {
  name: "devstoreaccount1",
  key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
};

interface Launched {
  readonly name: string;
  readonly child: ChildProcess;
  /** stderr so far (JSON log lines). */
  log(): string;
}

describe("deploy - the image's programs", () => {
  let work: string;
  let app: string;
  let compose: Awaited<ReturnType<typeof findCompose>>;
  const launched: Launched[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  before(async () => {
    work = mkdtempSync(join(tmpdir(), "deploy-bundles-"));
    app = join(work, "app");
    const built = await runCommand(process.execPath, [join(deployDir, "build-bundles.mjs"), app], {
      timeoutMs: 300_000,
    });
    assert.equal(built.code, 0, built.stderr);
    compose = await findCompose();
  });
  const stopAll = async () => {
    // The order `cloudtap up` stops in: fetchers, key-broker, stitchers, then mirror-egress (it flushes).
    const rank = (n: string) =>
      ["fetcher", "key-broker", "stitcher", "mirror-egress"].findIndex((p) => n.startsWith(p));
    for (const l of [...launched].sort((a, b) => rank(a.name) - rank(b.name))) {
      if (l.child.exitCode === null && l.child.signalCode === null) {
        const exited = new Promise((r) => l.child.once("exit", r));
        l.child.kill("SIGTERM");
        await exited;
      }
    }
    launched.length = 0;
    for (const c of cleanups.splice(0)) await c();
  };
  after(async () => {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  });

  /** The merged compose model of `files`, as compose hands it to the containers. */
  const composeModel = async (files: readonly string[]): Promise<ComposeModel> => {
    assert.ok(compose, "no compose (scripts/bootstrap.sh installs Debian's docker-compose)");
    const r = await runCommand(
      compose.file,
      [...compose.prefix, ...files.flatMap((f) => ["-f", f]), "config"],
      {
        cwd: deployDir,
        env: { ...process.env, KEY_BROKER_VAULT_KEY: "cd".repeat(32) },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    return readYaml(r.stdout) as ComposeModel;
  };

  /**
   * Starts the mesh's five services from the bundles with the environment compose gives them, each one only
   * after the previous answered its healthcheck (the compose order). Addresses become loopback ports (a
   * service's own listen address gets the port its peers dial by its name; status and PCAP-over-IP
   * listeners free ports), `/tls` its identity's folder, volume paths folders; `rewrite` adjusts the rest.
   */
  const startMesh = async (
    services: ComposeModel["services"],
    dirs: { pki: string; store: string; out: string; natsUrl: string },
    rewrite: (name: string, key: string, value: string) => string = (_n, _k, v) => v,
    extraEnv: Readonly<Record<string, NodeJS.ProcessEnv>> = {},
  ) => {
    const ports = new Map<string, number>();
    const portFor = async (service: string) => {
      if (!ports.has(service)) ports.set(service, await freePort());
      return ports.get(service)!;
    };
    for (const name of ["mirror-egress", "key-broker", "stitcher-a", "stitcher-b", "fetcher"] as const) {
      const identity = IDENTITY[name];
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "" };
      let probed: string | undefined;
      for (const [k, v] of Object.entries(services[name]!.environment ?? {})) {
        if (v === null || v === undefined) continue;
        let value = v;
        if (k.endsWith("_STATUS_LISTEN") || k.endsWith("_PCAP_OVER_IP") || k.endsWith("_METRICS_LISTEN"))
          value = `127.0.0.1:${await freePort()}`;
        else if (k.endsWith("_LISTEN")) value = `127.0.0.1:${await portFor(name)}`;
        else if (k.endsWith("_TLS_DIR")) value = join(dirs.pki, identity);
        else if (v.startsWith("nats://")) value = dirs.natsUrl;
        else if (v === "/data/store") value = dirs.store;
        else if (v === "/data/out") value = dirs.out;
        else if (v.startsWith("/")) {
          // Any other path in the container (a volume: the egress journal, ...) gets a folder of the run.
          value = join(dirs.out, "..", "volumes", v.replace(/^\/+/, ""));
          mkdirSync(value, { recursive: true });
        } else {
          const peer = /^([a-z][a-z0-9-]*):(\d+)$/.exec(v);
          if (peer && services[peer[1]!]) value = `127.0.0.1:${await portFor(peer[1]!)}`;
        }
        env[k] = rewrite(name, k, value);
        if (k.endsWith("_STATUS_LISTEN") || (k.endsWith("_LISTEN") && probed === undefined)) probed = value;
      }
      Object.assign(env, extraEnv[name] ?? {});
      assert.ok(probed, `${name} listens somewhere`);
      const program = join(app, `${name.startsWith("stitcher") ? "stitcher" : name}.mjs`);
      const child = spawn(process.execPath, [program], { env, stdio: ["ignore", "ignore", "pipe"] });
      let log = "";
      child.stderr!.on("data", (d: Buffer) => {
        log += d.toString();
      });
      launched.push({ name, child, log: () => log });

      // The service's healthcheck, as compose runs it, against the loopback address.
      const test = services[name]!.healthcheck!.test;
      const probeArgs = [join(app, "health-probe.mjs"), probed, ...test.slice(4)];
      probeArgs[probeArgs.indexOf("--tls-dir") + 1] = join(dirs.pki, identity);
      const deadline = Date.now() + 90_000;
      let last: Awaited<ReturnType<typeof runCommand>> | undefined;
      while (Date.now() < deadline) {
        last = await runCommand(process.execPath, probeArgs, { timeoutMs: 20_000 });
        if (last.code === 0 || child.exitCode !== null) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      assert.equal(last?.code, 0, `${name} is not healthy: ${last?.stderr}\n${log.slice(-4000)}`);
    }
  };

  const freshDirs = async (tag: string) => {
    const base = join(work, tag);
    const dirs = { pki: join(base, "pki"), store: join(base, "store"), out: join(base, "out") };
    mkdirSync(join(dirs.store, "data"), { recursive: true });
    mkdirSync(dirs.out);
    const made = await runCommand(process.execPath, [join(app, "make-pki.mjs"), dirs.pki]);
    assert.equal(made.code, 0, made.stderr);
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    return { ...dirs, natsUrl: nats.url };
  };

  it("deploy - bundles: the four services start from the bundles with compose's own environment and answer the healthcheck", async () => {
    const { services } = await composeModel(["compose.yaml"]);
    await startMesh(services, await freshDirs("base"));
    await stopAll();
  });

  it("deploy - bundles: the demo's path (azurite, its container, the simulator, the mesh on azblob://) ends in a pcapng with decrypted HTTP", async () => {
    const { services } = await composeModel(["compose.yaml", "compose.demo.yaml"]);
    const dirs = await freshDirs("demo");
    const azurite = await startAzurite({ accounts: [DEMO_ACCOUNT] });
    cleanups.push(() => azurite.cleanup());
    // Compose's connection string names azurite's service; here it listens on loopback.
    const local = (v: string) =>
      v.replace(/BlobEndpoint=http:\/\/azurite:\d+\//, `BlobEndpoint=http://127.0.0.1:${azurite.port}/`);
    const jobEnv = (job: string): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "" };
      for (const [k, v] of Object.entries(services[job]!.environment ?? {})) if (v) env[k] = local(v);
      return env;
    };
    const job = (name: string) =>
      services[name] as ComposeService & { command: string[]; entrypoint?: string[] };

    // demo-init: its entrypoint and command, the script from deploy/demo as the tools image has it.
    const init = job("demo-init");
    assert.deepEqual(init.entrypoint, ["node", "/app/create-container.mjs"]);
    const created = await runCommand(
      process.execPath,
      [join(deployDir, "demo/create-container.mjs"), ...init.command],
      {
        env: jobEnv("demo-init"),
      },
    );
    assert.equal(created.code, 0, created.stderr);
    // demo-simulator: the tools image's entrypoint (the CLI) with the compose command; fewer connections.
    const simulator = job("demo-simulator").command.map((a) =>
      a.startsWith("--connections=") ? "--connections=30" : a,
    );
    const simulated = await runCommand(
      process.execPath,
      [join(app, "cloudtap.mjs"), ...simulator, "--json"],
      {
        env: jobEnv("demo-simulator"),
        timeoutMs: 300_000,
      },
    );
    assert.equal(simulated.code, 0, simulated.stderr);
    const manifest = (JSON.parse(simulated.stdout) as { manifest: { connections: { protocol: string }[] } })
      .manifest;
    const http1 = manifest.connections.filter((c) => c.protocol === "https-h1").length;
    assert.ok(http1 > 0, "the simulation has HTTP/1.1 over TLS");

    // The image's CLI stitches the same store in one process: a cloud source is read on the store's own
    // thread, whose bundle (store-thread.mjs) must be beside the CLI's.
    const source = simulator.find((a) => a.startsWith("--out="))!.slice("--out=".length);
    const oneProcess = join(dirs.out, "..", "one-process.pcapng");
    const stitched = await runCommand(
      process.execPath,
      [join(app, "cloudtap.mjs"), "stitch", "--source", source, "--pcapng", oneProcess, "--json"],
      { env: jobEnv("demo-simulator"), timeoutMs: 300_000 },
    );
    assert.equal(stitched.code, 0, stitched.stderr);
    const summary = JSON.parse(stitched.stdout) as { blobs: number; packets: number; problems: unknown[] };
    assert.ok(summary.blobs > 0 && summary.packets > 0, stitched.stdout);
    assert.deepEqual(summary.problems, [], "every blob read through the store's thread");

    // The mesh with the demo's environment, one-shot (FETCHER_ONCE: the demo runs continuously) so that the
    // stitchers say when every shard's window is done.
    await startMesh(services, dirs, (_name, _key, value) => local(value), {
      fetcher: { FETCHER_ONCE: "true" },
    });
    const shardCount = Number(services["stitcher-a"]!.environment!.STITCHER_SHARD_COUNT);
    const doneShards = () => {
      const done = new Set<number>();
      for (const l of launched.filter((x) => x.name.startsWith("stitcher")))
        for (const line of l.log().split("\n")) {
          if (!line.includes('"end of window"')) continue;
          const entry = JSON.parse(line) as { shard: number; held: number };
          if (entry.held === 0) done.add(entry.shard);
        }
      return done.size;
    };
    const deadline = Date.now() + 240_000;
    while (doneShards() < shardCount && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1000));
    assert.equal(
      doneShards(),
      shardCount,
      `every shard's window is done\n${launched.map((l) => `${l.name}: ${l.log().slice(-1500)}`).join("\n")}`,
    );
    await stopAll();

    // mirror-egress closed its rotating capture file on SIGTERM: the cleartext twins show every HTTP/1.1 request.
    const files = readdirSync(dirs.out).filter((f) => f.endsWith(".pcapng"));
    assert.ok(files.length > 0, `a pcapng in the output folder: ${readdirSync(dirs.out).join(", ")}`);
    let requests = 0;
    for (const f of files) {
      const r = await runCommand("tshark", [
        "-r",
        join(dirs.out, f),
        "-Y",
        "http.request",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
      ]);
      assert.equal(r.code, 0, r.stderr);
      requests += r.stdout.split("\n").filter((l) => l.trim() !== "").length;
    }
    assert.ok(requests >= http1, `${requests} decrypted HTTP/1.1 requests for ${http1} HTTP/1.1 connections`);
  });
});

describe("deploy - the compose stack in containers", () => {
  it("deploy - containers: the demo stack comes up healthy and mirror-egress writes captures", async (t) => {
    const info = await runCommand("docker", ["info", "--format", "{{.ServerVersion}}"], {
      timeoutMs: 20_000,
    });
    if (info.code !== 0) {
      const why = (info.stderr.trim().split("\n").pop() ?? "").slice(0, 200);
      return t.skip(`no Docker engine answers (docker info: ${why}); the offline checks above still ran`);
    }
    const { DockerComposeEnvironment, Wait } = await import("testcontainers");
    const environment = await new DockerComposeEnvironment(deployDir, ["compose.yaml", "compose.demo.yaml"])
      .withEnvironment({ KEY_BROKER_VAULT_KEY: "ef".repeat(32), DEMO_CONNECTIONS: "50" })
      .withBuild()
      .withStartupTimeout(600_000)
      .withWaitStrategy("mirror-egress-1", Wait.forHealthCheck())
      .withWaitStrategy("stitcher-a-1", Wait.forHealthCheck())
      .withWaitStrategy("stitcher-b-1", Wait.forHealthCheck())
      .withWaitStrategy("key-broker-1", Wait.forHealthCheck())
      .withWaitStrategy("fetcher-1", Wait.forHealthCheck())
      .up();
    try {
      const egress = environment.getContainer("mirror-egress-1");
      const deadline = Date.now() + 300_000;
      let listing = "";
      while (Date.now() < deadline) {
        const r = await egress.exec(["ls", "/data/out"]);
        listing = r.output;
        if (/\.pcapng/.test(listing)) break;
        await new Promise((res) => setTimeout(res, 5000));
      }
      assert.match(listing, /\.pcapng/, "mirror-egress wrote a rotating capture file");
    } finally {
      await environment.down({ removeVolumes: true });
    }
  });
});
