/**
 * A conn-open's MSS as the synthesizer may use it. An MSS is whatever the tapper read from a SYN; a tiny one
 * (1, say, from a hostile or broken peer) would cut every record into hundreds of packets. Below
 * `MIN_SANE_MSS` (536, the default send MSS of RFC 9293 section 3.7.1) it is raised to it, announced so in
 * the synthesized SYN too; no byte changes, only how the bytes are segmented.
 */
export const MIN_SANE_MSS = 536;

export function saneMss(mss: number): number {
  return mss < MIN_SANE_MSS ? MIN_SANE_MSS : mss;
}
