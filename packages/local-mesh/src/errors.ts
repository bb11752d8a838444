/** Typed errors of the local mesh. */
import type { ProcessExit } from "./supervised-process.js";

/**
 * The exit codes of a service that a restart will not cure (service-kit's `ServiceExitCode`): 2 a bad
 * configuration, 3 a store that cannot be opened.
 */
export const PERMANENT_EXIT_CODES: ReadonlySet<number> = new Set([2, 3]);
export const STORE_CANNOT_OPEN_EXIT_CODE = 3;

export function isPermanentExit(exit: Pick<ProcessExit, "code"> | undefined): boolean {
  return exit?.code !== undefined && exit.code !== null && PERMANENT_EXIT_CODES.has(exit.code);
}

/**
 * An instance of a one-shot mesh ended with an exit a restart will not cure (`cloudtap up --once`): the run
 * cannot finish, so it stops and fails with this, naming the instance and its reason (the store it cannot
 * open, the configuration variable at fault).
 */
export class MeshInstanceFailedError extends Error {
  override readonly name = "MeshInstanceFailedError";
  constructor(
    readonly instance: string,
    readonly exit: ProcessExit,
    readonly logFile: string,
  ) {
    super(
      `${instance} cannot run: ${exit.reason ?? `exited with ${exit.signal ?? `status ${exit.code}`}`} ` +
        `(exit status ${exit.code ?? exit.signal}, not restarted in a one-shot run; log ${logFile})`,
    );
  }

  /** True when the instance could not open its store (the fetcher its data store, the key-broker its keys). */
  get storeCannotOpen(): boolean {
    return this.exit.code === STORE_CANNOT_OPEN_EXIT_CODE;
  }
}
