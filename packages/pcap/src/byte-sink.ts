/** Where a writer's bytes go. A returned promise is awaited before the next write (backpressure). */
export interface ByteSink {
  write(chunk: Uint8Array): void | Promise<void>;
}
