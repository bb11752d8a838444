/**
 * The core packages stay platform-neutral (docs/architecture.md): they work on Uint8Array and async
 * iterables, take time as input, and import no file system, sockets, processes, threads or SDKs. Pure
 * computation that Node provides (node:crypto, node:zlib) and native-part loading (node:module) are allowed,
 * and so are type-only imports (the fetch side names the object-store interface, not its backends).
 * This test reads the import lines of every non-test source file of the core and fails on one that breaks
 * the rule; test helpers that need Node live outside `src/` (e.g. packages/tls/test/).
 *
 * egress's neutral entry (`@cloudtap/egress`, src/index.ts) is held to more: importing it must load no
 * `node:*` module at all, nor any package outside the workspace. That is checked by following what it loads
 * at run time, file by file and into the workspace packages it reaches (through their package.json exports),
 * so a new neutral file is covered without being listed, and a neutral file that starts to import an adapter
 * file (one that imports node:fs, node:dgram, ...) fails the test.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";

const ROOT = new URL("../../../", import.meta.url).pathname;
const CORE = ["tap-format", "pcap", "packet", "flow", "tls", "stitch", "mirror", "fetch"];
const FORBIDDEN =
  /from\s+"(node:(fs|fs\/promises|net|dgram|child_process|http|https|http2|worker_threads|cluster|os|tls)|fs|net|dgram|child_process|@aws-sdk\/[^"]*|@google-cloud\/[^"]*|@azure\/[^"]*|@nats-io\/[^"]*|@grpc\/[^"]*|@cloudtap\/(?:object-store|egress|bus|rpc|mesh|service-kit|local-mesh)(?:\/[^"]*)?)"/g;
/** `import type` statements are erased at compile time: a core package may name an adapter's types. */
const TYPE_IMPORT = /import\s+type\s+[^;]*?from\s+"[^"]*";/g;

function sources(dir: string): string[] {
  return readdirSync(dir).filter(
    (f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith(".bench.ts") && !f.startsWith("test-"),
  );
}

/** Forbidden imports of the given files of a package's src/, as "file: module" lines. */
export function forbiddenImports(pkg: string, files: readonly string[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(ROOT, "packages", pkg, "src", f), "utf8").replace(TYPE_IMPORT, "");
    for (const m of text.matchAll(FORBIDDEN)) out.push(`packages/${pkg}/src/${f}: ${m[1]}`);
  }
  return out;
}

/**
 * The modules a TypeScript file loads at run time, as written: `import ... from`, `export ... from`, bare
 * `import "x"` and `import("x")` with a literal. `import type` and `export type` statements are left out
 * (erased); `import { type A } from "x"` is kept, since under verbatimModuleSyntax it still loads "x".
 */
export function runtimeSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.importClause?.isTypeOnly) out.push(node.moduleSpecifier.text);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      if (!node.isTypeOnly) out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expression = node.moduleReference.expression;
      if (!node.isTypeOnly && ts.isStringLiteral(expression)) out.push(expression.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      out.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** A workspace package's entry file for `@cloudtap/<name>[/<sub>]`, from its package.json exports. */
function workspaceEntry(specifier: string): string | undefined {
  const m = /^@cloudtap\/([^/]+)(\/.*)?$/.exec(specifier);
  if (!m) return undefined;
  const dir = join(ROOT, "packages", m[1]!);
  if (!existsSync(join(dir, "package.json"))) return undefined;
  const exports = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).exports as
    | Record<string, string>
    | undefined;
  const target = exports?.[m[2] === undefined ? "." : `.${m[2]}`];
  return target === undefined ? undefined : join(dir, target);
}

/** `./x.js` written in a .ts file names `./x.ts`. */
function relativeFile(from: string, specifier: string): string {
  const target = resolve(dirname(from), specifier);
  const asTs = target.replace(/\.js$/, ".ts");
  return existsSync(asTs) ? asTs : target;
}

export interface ModuleClosure {
  /** Workspace source files that loading the entry loads, relative to the repository root. */
  readonly files: readonly string[];
  /** What leaves the workspace's TypeScript sources, as "file: module" lines (node builtins, npm packages, native parts). */
  readonly outside: readonly string[];
}

/** Follows the run-time imports of `entry` through relative files and workspace packages. */
export function moduleClosure(entry: string): ModuleClosure {
  const seen = new Set<string>();
  const outside: string[] = [];
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of runtimeSpecifiers(file)) {
      const target = specifier.startsWith(".") ? relativeFile(file, specifier) : workspaceEntry(specifier);
      if (target?.endsWith(".ts") && existsSync(target)) queue.push(target);
      else outside.push(`${relative(ROOT, file)}: ${specifier}`);
    }
  }
  return { files: [...seen].map((f) => relative(ROOT, f)).sort(), outside };
}

describe("architecture - core neutrality", () => {
  it("architecture - the core packages import no file system, sockets, processes or SDKs", () => {
    const found = CORE.flatMap((pkg) => forbiddenImports(pkg, sources(join(ROOT, "packages", pkg, "src"))));
    assert.deepEqual(found, []);
  });

  it("architecture - the check sees a core file that imports node:fs, or egress's node entry", () => {
    const text =
      'import { readFileSync } from "node:fs";\nimport { x } from "@cloudtap/packet";\n' +
      'import { openEgress } from "@cloudtap/egress/node";';
    assert.deepEqual(
      [...text.matchAll(FORBIDDEN)].map((m) => m[1]),
      ["node:fs", "@cloudtap/egress/node"],
    );
  });

  it("architecture - importing @cloudtap/egress loads no node:* module and no package outside the workspace", () => {
    const closure = moduleClosure(join(ROOT, "packages/egress/src/index.ts"));
    assert.deepEqual(closure.outside, []);
    // The walk is not vacuous: it reaches the neutral files and the packages they import, and no adapter.
    for (const f of [
      "egress/src/tunnel-output.ts",
      "egress/src/geneve.ts",
      "packet/src/index.ts",
      "pcap/src/index.ts",
    ]) {
      assert.ok(closure.files.includes(`packages/${f}`), f);
    }
    for (const f of [
      "udp-transport.ts",
      "pcap-over-ip.ts",
      "capture-file-output.ts",
      "open-egress.ts",
      "node.ts",
    ]) {
      assert.ok(!closure.files.includes(`packages/egress/src/${f}`), f);
    }
  });

  it("architecture - the stitcher's closure reaches no egress adapter", () => {
    const closure = moduleClosure(join(ROOT, "packages/stitch/src/index.ts"));
    const egressFiles = closure.files.filter((f) => f.startsWith("packages/egress/"));
    const neutral = new Set(moduleClosure(join(ROOT, "packages/egress/src/index.ts")).files);
    assert.deepEqual(
      egressFiles.filter((f) => !neutral.has(f)),
      [],
    );
  });

  it("architecture - the walk finds node:fs two files deep, and skips type-only imports", () => {
    const dir = mkdtempSync(join(tmpdir(), "neutrality-probe-"));
    try {
      writeFileSync(
        join(dir, "index.ts"),
        'import type { Stats } from "node:fs";\nexport { helper } from "./helper.js";\nexport type { S } from "./types.js";\n',
      );
      writeFileSync(
        join(dir, "helper.ts"),
        'import { type FrameSink } from "@cloudtap/packet";\nimport { readFileSync } from "node:fs";\nexport const helper = readFileSync;\n',
      );
      writeFileSync(
        join(dir, "types.ts"),
        'import { connect } from "node:net";\nexport type S = typeof connect;\n',
      );
      const closure = moduleClosure(join(dir, "index.ts"));
      assert.deepEqual(closure.outside, [`${relative(ROOT, join(dir, "helper.ts"))}: node:fs`]);
      assert.ok(
        closure.files.includes("packages/packet/src/index.ts"),
        "an inline `type` import still loads",
      );
      assert.ok(!closure.files.some((f) => f.endsWith("types.ts")), "an `export type` loads nothing");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
