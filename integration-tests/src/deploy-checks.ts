/**
 * Checks of the deployment files that need no container engine, used by deploy.test.ts: a compose runner
 * (`docker compose` or Debian's `docker-compose`), the compose-spec schema, a Dockerfile linter for the rules
 * that matter (hadolint does not install here: no Debian package, no npm package), and the Kubernetes
 * objects' schemas (kubernetes-models).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { parseAllDocuments, parse as parseYaml } from "yaml";

const run = promisify(execFile);

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const deployDir = join(repoRoot, "deploy");

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCommand(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  try {
    const r = await run(file, [...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message?: string };
    return {
      code: typeof e.code === "number" ? e.code : -1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? e.message ?? "",
    };
  }
}

/** The compose implementation here: the plugin if it answers, else Debian's docker-compose, else none. */
export async function findCompose(): Promise<{ file: string; prefix: string[]; name: string } | undefined> {
  const plugin = await runCommand("docker", ["compose", "version"]);
  if (plugin.code === 0) return { file: "docker", prefix: ["compose"], name: plugin.stdout.trim() };
  const standalone = await runCommand("docker-compose", ["version", "--short"]);
  if (standalone.code === 0)
    return { file: "docker-compose", prefix: [], name: `docker-compose ${standalone.stdout.trim()}` };
  return undefined;
}

/** Parses YAML the way compose does: anchors and `<<` merge keys resolved. */
export function readYaml(text: string): unknown {
  return parseYaml(text, { merge: true, maxAliasCount: -1 });
}

export function readYamlStream(text: string): unknown[] {
  return parseAllDocuments(text, { merge: true })
    .map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join("; "));
      return d.toJS({ maxAliasCount: -1 }) as unknown;
    })
    .filter((d) => d !== null && d !== undefined);
}

export interface SchemaProblem {
  readonly path: string;
  readonly message: string;
}

let composeValidator: ReturnType<Ajv["compile"]> | undefined;

/** Validates a compose model (one file, or `config`'s merged output) against the compose-spec schema. */
export function composeSchemaProblems(model: unknown): SchemaProblem[] {
  if (!composeValidator) {
    const schema = JSON.parse(readFileSync(join(deployDir, "schema/compose-spec.json"), "utf8")) as object;
    // Its formats (duration, ...) are annotations here; its $schema names draft-07 by an https URL that Ajv
    // does not register, so the schema itself is not checked against the meta-schema.
    composeValidator = new Ajv({
      strict: false,
      allErrors: true,
      validateFormats: false,
      validateSchema: false,
    }).compile(schema);
  }
  if (composeValidator(model)) return [];
  return (composeValidator.errors ?? []).map((e) => ({
    path: e.instancePath || "/",
    message: `${e.message ?? "invalid"}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`,
  }));
}

// ---- Dockerfile rules -------------------------------------------------------------------------------------

export interface DockerfileFinding {
  readonly rule: string;
  readonly line: number;
  readonly message: string;
}

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
  /** Rules ignored by a `# hadolint ignore=...` comment right above. */
  readonly ignored: ReadonlySet<string>;
}

function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split("\n");
  let ignored = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed === "") continue;
    if (trimmed.startsWith("#")) {
      const m = /^#\s*hadolint\s+ignore=([A-Z0-9,]+)/.exec(trimmed);
      if (m) ignored = new Set(m[1]!.split(","));
      continue;
    }
    const start = i;
    let body = trimmed;
    while (body.endsWith("\\") && i + 1 < lines.length) {
      body = `${body.slice(0, -1)} ${lines[++i]!.trim()}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(body)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start + 1, ignored });
    ignored = new Set();
  }
  return out;
}

/**
 * hadolint's rules that matter for these images, by their hadolint numbers: pinned base images (DL3006,
 * DL3007), a non-root user at the end of every stage that runs (DL3002), JSON CMD and ENTRYPOINT (DL3025),
 * apt hygiene (DL3008 pinned versions, DL3009 lists removed, DL3014 -y, DL3015 no recommends), no `cd`
 * (DL3003), no sudo (DL3004), COPY not ADD (DL3020), absolute WORKDIR (DL3000), pipefail before a pipe
 * (DL4006), pinned npm globals (DL3016).
 */
export function lintDockerfile(text: string): DockerfileFinding[] {
  const findings: DockerfileFinding[] = [];
  const add = (ins: Instruction, rule: string, message: string) => {
    if (!ins.ignored.has(rule)) findings.push({ rule, line: ins.line, message });
  };
  const all = instructions(text);
  const args = new Map<string, string>();
  const stages = new Map<string, { user: string; runs: boolean }>();
  // A stage "runs" when it (or its parent stage) has CMD or ENTRYPOINT: build stages may stay root.
  let current: { name: string | undefined; user: string; runs: boolean; from: Instruction } | undefined;
  let pipefail = false;
  const endStage = () => {
    if (current?.name) stages.set(current.name, { user: current.user, runs: current.runs });
    if (current?.runs && /^(root|0)(:|$)/.test(current.user))
      add(current.from, "DL3002", `stage ${current.name ?? "(unnamed)"} ends as root`);
  };
  const expand = (s: string) =>
    s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, n: string) => args.get(n) ?? "");
  for (const ins of all) {
    switch (ins.keyword) {
      case "ARG": {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(ins.args.trim());
        if (m && current === undefined) args.set(m[1]!, (m[2] ?? "").replace(/^"|"$/g, ""));
        break;
      }
      case "FROM": {
        endStage();
        const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args.trim());
        if (!m) {
          add(ins, "DL3006", `cannot read FROM ${ins.args}`);
          break;
        }
        const image = expand(m[1]!);
        const parent = stages.get(image);
        if (!parent && image !== "scratch") {
          const tag = /^[^@]+@sha256:[0-9a-f]{64}$/.test(image) ? "digest" : /:([^/]+)$/.exec(image)?.[1];
          if (tag === undefined || tag === "") add(ins, "DL3006", `base image ${image} has no tag`);
          else if (tag === "latest") add(ins, "DL3007", `base image ${image} uses latest`);
        }
        current = { name: m[2], user: parent?.user ?? "root", runs: parent?.runs ?? false, from: ins };
        break;
      }
      case "USER":
        if (current) current.user = ins.args.trim();
        break;
      case "SHELL":
        pipefail = ins.args.includes("pipefail");
        break;
      case "WORKDIR":
        if (!expand(ins.args.trim()).startsWith("/")) add(ins, "DL3000", "WORKDIR is not absolute");
        break;
      case "ADD":
        if (!/https?:\/\//.test(ins.args)) add(ins, "DL3020", "ADD of local files: use COPY");
        break;
      case "CMD":
      case "ENTRYPOINT":
        if (current) current.runs = true;
        if (!ins.args.trim().startsWith("[")) add(ins, "DL3025", `${ins.keyword} is not in JSON form`);
        break;
      case "RUN": {
        const cmd = ins.args;
        if (/(^|[;&|]\s*)cd\s/.test(cmd)) add(ins, "DL3003", "cd in RUN: use WORKDIR");
        if (/(^|\s)sudo\s/.test(cmd)) add(ins, "DL3004", "sudo in RUN");
        if (/[^|]\|[^|]/.test(cmd.replace(/\|\|/g, "")) && !pipefail)
          add(ins, "DL4006", "a pipe without SHELL [..., -o pipefail]");
        if (/apt-get\s+(?:\S+\s+)*install/.test(cmd)) {
          if (!/--no-install-recommends/.test(cmd))
            add(ins, "DL3015", "apt-get install without --no-install-recommends");
          if (!/(\s-y\b|--yes|-qq?y|--assume-yes)/.test(cmd))
            add(ins, "DL3014", "apt-get install without -y");
          if (!/rm -rf \/var\/lib\/apt\/lists/.test(cmd)) add(ins, "DL3009", "apt lists not removed");
          const packages = cmd
            .split(/apt-get\s+(?:\S+\s+)*install/)[1]!
            .split(/&&|;/)[0]!
            .split(/\s+/)
            .filter((w) => w !== "" && !w.startsWith("-"));
          for (const p of packages) if (!p.includes("=")) add(ins, "DL3008", `apt package ${p} not pinned`);
        }
        for (const m of cmd.matchAll(/npm\s+(?:install|i)\s+(?:--global|-g)\s+([^&;]+)/g)) {
          for (const p of m[1]!.split(/\s+/).filter((w) => w !== "" && !w.startsWith("-"))) {
            if (!/@[^@/]+$/.test(p.replace(/^"|"$/g, ""))) add(ins, "DL3016", `npm global ${p} not pinned`);
          }
        }
        break;
      }
    }
  }
  if (current) current.runs = true; // the last stage is the default target
  endStage();
  return findings;
}

/** The stage names of a Dockerfile (`FROM ... AS name`). */
export function dockerfileStages(text: string): string[] {
  return instructions(text)
    .filter((i) => i.keyword === "FROM")
    .map((i) => /\s+AS\s+(\S+)\s*$/i.exec(i.args)?.[1])
    .filter((n): n is string => n !== undefined);
}

// ---- Kubernetes --------------------------------------------------------------------------------------------

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly spec?: unknown;
  readonly [key: string]: unknown;
}

/** The model package of an apiVersion: core and built-in groups, cert-manager, KEDA. */
function modelModule(apiVersion: string): string {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "cert-manager.io") return `@kubernetes-models/cert-manager/cert-manager.io/${version}`;
  if (group === "keda.sh") return `@kubernetes-models/keda/keda.sh/${version}`;
  return group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
}

/** Validates one object against its kind's schema; throws naming the object and the first problems. */
export async function validateKubeObject(obj: KubeObject): Promise<void> {
  const module = (await import(modelModule(obj.apiVersion))) as Record<string, unknown>;
  const Model = module[obj.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (Model === undefined)
    throw new Error(`${obj.apiVersion} ${obj.kind} ${obj.metadata.name}: no schema for this kind`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind}/${obj.metadata.name}: ${(err as Error).message}`);
  }
}
