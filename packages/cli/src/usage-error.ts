/** A command line that cannot be run as given; printed with the command's usage, exit status 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
