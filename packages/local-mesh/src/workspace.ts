/**
 * Where the services' code is. Run from the CLI's bundle (scripts/build.mjs puts every service's bundle
 * beside the CLI's, from the same sources), each service runs from its bundle; run from the sources (tsx),
 * each service runs from its `services/<name>/src/main.ts` through tsx, found from the workspace root (the
 * folder holding pnpm-workspace.yaml above this file, in a checkout or beside the CLI's bundle). A bundled
 * service starts in about a fifth of the CPU time tsx takes to compile its sources, which counts for a mesh
 * of six processes and for every restart.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = fileURLToPath(import.meta.url);
/** The bundle's folder when this module runs from a bundle, not from its TypeScript source. */
const bundleDir = here.endsWith(".ts") ? undefined : dirname(here);

export function workspaceRoot(from: string = here): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no pnpm-workspace.yaml above ${from}: run cloudtap up from a checkout`);
    dir = up;
  }
}

/**
 * The node arguments that run a program: its bundle `<name>.mjs` beside this one when this code runs from a
 * bundle and that file is there, else its TypeScript `source` through tsx.
 */
export function programCommand(root: string, name: string, source: string): string[] {
  if (bundleDir !== undefined) {
    const bundled = join(bundleDir, `${name}.mjs`);
    if (existsSync(bundled)) return [bundled];
  }
  if (!existsSync(source)) throw new Error(`${name}: ${source} is missing`);
  return tsxCommand(root, source);
}

/** The node arguments that run a service's main module. */
export function serviceCommand(root: string, service: string): string[] {
  return programCommand(root, service, join(root, "services", service, "src", "main.ts"));
}

/** The node arguments that run a TypeScript module through tsx. */
export function tsxCommand(root: string, main: string): string[] {
  // tsx's loader, resolved from the root (the root's devDependency), as a URL for --import.
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  return ["--import", pathToFileURL(tsx).href, main];
}
