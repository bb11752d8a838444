/**
 * Where a worker thread's code is: a TypeScript module beside this file in a checkout (tests, `node
 * --import tsx`), or its entry beside the bundle (scripts/build.mjs writes each entry and its chunks into
 * one directory). Loader hooks are per thread, so in a checkout the worker registers tsx itself.
 */
import { Worker, type WorkerOptions } from "node:worker_threads";

/** Starts the worker of `module` (e.g. "./worker.ts"), bundled as `entry` (e.g. "stitch-worker.mjs"). */
export function startWorker(module: string, entry: string, options: WorkerOptions): Worker {
  const here = import.meta.url;
  if (here.endsWith(".ts")) {
    const file = new URL(module, here).href;
    const api = import.meta.resolve("tsx/esm/api");
    const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(file)}); })`;
    return new Worker(code, { ...options, eval: true });
  }
  return new Worker(new URL(`./${entry}`, here), options);
}
