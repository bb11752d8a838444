#!/usr/bin/env node
/**
 * `cloudtap <command> [options]`: reads the command line, installs the shutdown signal, runs one command.
 * Commands are thin wiring over packages/*.
 */
import { commandLoaders } from "./command-catalog.js";
import { type CommandName, CommandSummary } from "./command-summaries.js";
import { UsageError } from "./usage-error.js";

const commands = Object.entries(CommandSummary).map(([name, summary]) => ({ name, summary }));

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "usage: cloudtap <command> [options]",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "cloudtap <command> --help shows a command's options.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const load = Object.hasOwn(commandLoaders, name) ? commandLoaders[name as CommandName] : undefined;
  if (!load) {
    process.stderr.write(`cloudtap: unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  const cmd = await load();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`usage: ${cmd.usage}\n`);
    return 0;
  }
  const shutdown = new AbortController();
  const onSignal = () => shutdown.abort(new Error("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await cmd.run(rest, { stdout: process.stdout, stderr: process.stderr, signal: shutdown.signal });
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`cloudtap ${name}: ${(err as Error).message}\n\nusage: ${cmd.usage}\n`);
      return 2;
    }
    if (shutdown.signal.aborted) {
      process.stderr.write(`cloudtap ${name}: interrupted\n`);
      return 130;
    }
    const e = err as Error;
    process.stderr.write(`cloudtap ${name}: ${e.name}: ${e.message}\n`);
    if (process.env["CLOUDTAP_DEBUG"]) process.stderr.write(`${e.stack}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

const status = await main(process.argv.slice(2));
process.exitCode = status;
// Interrupted: the command flushed or removed its outputs before returning. A read still blocked in the
// thread pool (a pipe nobody writes to, as `ingest --pcap /dev/stdin` of a stalled tcpdump) must not keep
// the process alive after that.
if (status === 130) process.exit(status);
