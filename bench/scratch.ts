import { existsSync } from "node:fs";
import { tmpdir } from "node:os";

/**
 * Where benchmarks put their data: a memory file system when the machine has one, so the figures measure
 * cloudtap and tshark, not the disk (on this VM, writing 200 MB to disk halves the stitch rate).
 */
export function scratchDir(): string {
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}
