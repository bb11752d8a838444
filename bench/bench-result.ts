export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly detail?: string;
  /** A target from the issue or design, for the report ("at least 1000 MB/s"). */
  readonly target?: string;
}
