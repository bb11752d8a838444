#!/usr/bin/env node
import { existsSync } from "node:fs";
/**
 * Builds what the container images run: one ES module per program (the four services, the health probe,
 * the PKI command, the `cloudtap` CLI with its stitch-worker and store threads), bundled with esbuild from the
 * workspace's TypeScript, plus the native addons beside them under node_modules/@cloudtap/<package>/ so that
 * each package's `@cloudtap/<package>/native` export resolves from the bundle as it does in the workspace, and
 * the few data files a package resolves through its exports (the simulator's test certificates).
 *
 *   node deploy/build-bundles.mjs [OUT_DIR]   (default deploy/.build/app)
 *
 * Fails when a native addon is missing (an image without them would run the slower JavaScript paths and
 * say so only in its reports); CLOUDTAP_ALLOW_JS_FALLBACK=1 builds anyway.
 */
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Program name -> entry point. The Dockerfile copies `<name>.mjs` into the image of that program. */
export const programs = {
  fetcher: "services/fetcher/src/main.ts",
  "key-broker": "services/key-broker/src/main.ts",
  stitcher: "services/stitcher/src/main.ts",
  "mirror-egress": "services/mirror-egress/src/main.ts",
  "health-probe": "packages/rpc/src/cli/health-probe.ts",
  "make-pki": "packages/rpc/src/cli/make-pki.ts",
  cloudtap: "packages/cli/src/main.ts",
  // Found beside the CLI's bundle by @cloudtap/stitch-workers.
  "stitch-worker": "packages/stitch-workers/src/worker.ts",
  // A cloud source store's own thread (openStoreOnThread), found beside the CLI's bundle too.
  "store-thread": "packages/stitch-workers/src/store-thread-worker.ts",
};

/** The native addons: package folder -> the file its `./native` export names. */
export const natives = {
  "tap-format": "build/Release/cloudtap_crc32.node",
  packet: "build/Release/cloudtap_checksum.node",
  tls: "build/Release/cloudtap_aead.node",
  egress: "build/Release/cloudtap_sendmmsg.node",
};

/** Files a package resolves through its own exports at run time: package folder -> export -> files. */
export const assets = {
  // The simulator's test certificates (`@cloudtap/tapsim/testdata/<name>`), for `cloudtap simulate`.
  tapsim: {
    "./testdata/*": [
      "testdata/rsa-cert.pem",
      "testdata/rsa-key.pem",
      "testdata/ecdsa-cert.pem",
      "testdata/ecdsa-key.pem",
    ],
  },
};

export async function buildBundles(outDir) {
  const missing = Object.entries(natives)
    .map(([pkg, file]) => join(root, "packages", pkg, file))
    .filter((p) => !existsSync(p));
  if (missing.length > 0 && process.env.CLOUDTAP_ALLOW_JS_FALLBACK !== "1") {
    throw new Error(
      `native addons missing (the install did not build them): ${missing.join(", ")}; ` +
        "install g++, make and python3 and reinstall, or set CLOUDTAP_ALLOW_JS_FALLBACK=1",
    );
  }
  await rm(outDir, { recursive: true, force: true });
  const esbuild = await import("esbuild");
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(
      Object.entries(programs).map(([name, entry]) => [name, join(root, entry)]),
    ),
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    legalComments: "linked",
    logLevel: "warning",
    external: ["@cloudtap/*/native"],
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: {
      js: "import { createRequire as __cloudtapRequire } from 'node:module'; const require = __cloudtapRequire(import.meta.url);",
    },
  });
  for (const [pkg, file] of Object.entries(natives)) {
    const from = join(root, "packages", pkg, file);
    if (!existsSync(from)) continue;
    const dir = join(outDir, "node_modules", "@cloudtap", pkg);
    await mkdir(join(dir, dirname(file)), { recursive: true });
    await copyFile(from, join(dir, file));
    await writeFile(
      join(dir, "package.json"),
      `${JSON.stringify({ name: `@cloudtap/${pkg}`, private: true, exports: { "./native": `./${file}` } }, null, 2)}\n`,
    );
  }
  for (const [pkg, exported] of Object.entries(assets)) {
    const dir = join(outDir, "node_modules", "@cloudtap", pkg);
    for (const files of Object.values(exported)) {
      for (const file of files) {
        await mkdir(join(dir, dirname(file)), { recursive: true });
        await copyFile(join(root, "packages", pkg, file), join(dir, file));
      }
    }
    const exports = Object.fromEntries(Object.keys(exported).map((e) => [e, e]));
    await writeFile(
      join(dir, "package.json"),
      `${JSON.stringify({ name: `@cloudtap/${pkg}`, private: true, exports }, null, 2)}\n`,
    );
  }
  await writeFile(
    join(outDir, "package.json"),
    `${JSON.stringify({ type: "module", private: true }, null, 2)}\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? join(root, "deploy/.build/app"));
  await buildBundles(outDir);
  process.stderr.write(`built ${Object.keys(programs).join(", ")} into ${outDir}\n`);
}
