/**
 * Where the services' code is: each service runs from its `services/<name>/src/main.ts` through tsx, found
 * from the workspace root (the folder holding pnpm-workspace.yaml above this file, in a checkout or beside
 * the CLI's bundle).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export function workspaceRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no pnpm-workspace.yaml above ${from}: run cloudtap up from a checkout`);
    dir = up;
  }
}

/** The node arguments that run a service's main module. */
export function serviceCommand(root: string, service: string): string[] {
  const main = join(root, "services", service, "src", "main.ts");
  if (!existsSync(main)) throw new Error(`service ${service}: ${main} is missing`);
  return tsxCommand(root, main);
}

/** The node arguments that run a TypeScript module through tsx. */
export function tsxCommand(root: string, main: string): string[] {
  // tsx's loader, resolved from the root (the root's devDependency), as a URL for --import.
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  return ["--import", pathToFileURL(tsx).href, main];
}
