export type { Command, CommandIo } from "./command.js";
export { UsageError } from "./usage-error.js";
