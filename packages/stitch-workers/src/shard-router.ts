/**
 * Which worker stitches which connection: decided by every worker alike, from the frames of the blobs in the
 * order they are read, with no message between workers.
 *
 * A connection belongs to the shard that was the least loaded when its first frame appeared (load: the body
 * bytes of the frames it was given so far; ties to the lower shard). A fixed hash of the connection id
 * balances connection counts, not bytes: traffic is heavy-tailed (in the TLS benchmark's 700 connections the
 * 10 largest carry 38 % of the bytes), and a hash split left one of two workers idle a third of the run.
 * Every worker sees every frame's header and body bytes (unverified for frames it does not own), so all
 * reach the same assignment; a damaged connection id is assigned like any other and the owner's body checksum
 * then rejects the frame.
 *
 * Bounded: assignments of closed connections are forgotten after `keepClosed` newer closes (a record that
 * comes later than that is assigned afresh, possibly elsewhere, and counted there as a flow without open).
 */
import { connIdToHex, FrameType } from "@cloudtap/tap-format";

/** Fixed cost a frame adds to its shard's load, besides its body bytes. */
const FRAME_COST = 64;

export class ShardRouter {
  private readonly owner = new Map<string, number>();
  private readonly load: number[];
  private readonly closed: string[] = [];
  private closedHead = 0;

  constructor(
    readonly shards: number,
    private readonly keepClosed = 100_000,
  ) {
    this.load = new Array(shards).fill(0);
  }

  /** The shard of the frame (every frame of one connection gets the same one); -1 for frames of no connection. */
  route(frameType: number, body: Uint8Array): number {
    if (
      frameType !== FrameType.ConnOpen &&
      frameType !== FrameType.Data &&
      frameType !== FrameType.Datagram &&
      frameType !== FrameType.ConnClose
    )
      return -1;
    if (body.length < 16) return -1;
    const id = connIdToHex(body, 0);
    let shard = this.owner.get(id);
    if (shard === undefined) {
      shard = 0;
      for (let i = 1; i < this.shards; i++) if (this.load[i]! < this.load[shard]!) shard = i;
      this.owner.set(id, shard);
    }
    this.load[shard]! += body.length + FRAME_COST;
    if (frameType === FrameType.ConnClose) this.forgetLater(id);
    return shard;
  }

  /** Bytes routed to each shard so far. */
  get loads(): readonly number[] {
    return this.load;
  }

  get connections(): number {
    return this.owner.size;
  }

  private forgetLater(id: string): void {
    this.closed.push(id);
    if (this.closed.length - this.closedHead > this.keepClosed) {
      this.owner.delete(this.closed[this.closedHead]!);
      this.closedHead++;
      if (this.closedHead > 4096 && this.closedHead * 2 > this.closed.length) {
        this.closed.splice(0, this.closedHead);
        this.closedHead = 0;
      }
    }
  }
}
