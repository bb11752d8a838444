/**
 * Tests only: a FrameSink that hands each Ethernet/IPv4/TCP frame it is given to `parse`, with the frame,
 * a view of it, the TCP header's offset and the frame's time, and keeps what `parse` returns (undefined:
 * nothing) in `items`, in the order the frames came.
 */
import type { FrameSink } from "@cloudtap/packet";

export function parsingSink<T>(
  parse: (frame: Uint8Array, view: DataView, tcp: number, ns: bigint) => T | undefined,
): FrameSink & { items: T[] } {
  let frame = new Uint8Array(0);
  const items: T[] = [];
  return {
    items,
    begin(length: number) {
      frame = new Uint8Array(length);
      return frame;
    },
    commit(timestampNs: bigint, offsetNs = 0) {
      const item = parse(
        frame,
        new DataView(frame.buffer),
        14 + (frame[14]! & 0x0f) * 4,
        timestampNs + BigInt(offsetNs),
      );
      if (item !== undefined) items.push(item);
    },
  };
}
