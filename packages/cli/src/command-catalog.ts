/**
 * The commands, each loaded only when it runs: the bundle splits at these imports, so a `stitch` starts
 * without compiling the mesh's gRPC, NATS and telemetry code (about 0.1 s of every run). Their one-line
 * summaries are in command-summaries.ts, so `cloudtap --help` loads none of them.
 */
import type { Command } from "./command.js";
import type { CommandName } from "./command-summaries.js";

export const commandLoaders: Readonly<Record<CommandName, () => Promise<Command>>> = {
  simulate: async () => (await import("./commands/simulate.js")).simulateCommand,
  ingest: async () => (await import("./commands/ingest.js")).ingestCommand,
  inspect: async () => (await import("./commands/inspect.js")).inspectCommand,
  stitch: async () => (await import("./commands/stitch.js")).stitchCommand,
  up: async () => (await import("./commands/up.js")).upCommand,
  status: async () => (await import("./commands/status.js")).statusCommand,
  replay: async () => (await import("./commands/replay.js")).replayCommand,
};
