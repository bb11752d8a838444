/**
 * Gives every simulated connection its own loopback address (127.a.b.c), so that every socket of it (client to
 * relay, relay to server, and the server's view of its peer) is identified by `remoteAddress` alone: no race
 * between accepting a socket and learning which planned connection it is. Linux routes all of 127.0.0.0/8 to
 * the loopback interface, so any address in it can be bound without configuration.
 */

/** Addresses 127.1.0.1 .. 127.254.255.254; octets 0 and 255 in the last place are skipped. */
const FIRST = (1 << 16) | 1;
const LAST = (254 << 16) | (255 << 8) | 254;

function toAddress(n: number): string {
  return `127.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

export class LoopbackRegistry<T> {
  private readonly entries = new Map<string, T>();
  private next = FIRST;

  /** Number of addresses currently held. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Reserves a fresh address and registers the value `make` builds for it. Addresses are reused only after
   * the whole range went round.
   */
  acquire(make: (address: string) => T): string {
    for (let tries = 0; tries <= LAST - FIRST; tries++) {
      const n = this.next;
      this.next = n >= LAST ? FIRST : n + 1;
      const last = n & 0xff;
      if (last === 0 || last === 255) continue;
      const address = toAddress(n);
      if (!this.entries.has(address)) {
        this.entries.set(address, make(address));
        return address;
      }
    }
    throw new RangeError("no free loopback address");
  }

  get(address: string | undefined): T | undefined {
    if (address === undefined) return undefined;
    // Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 addresses.
    return this.entries.get(address.startsWith("::ffff:") ? address.slice(7) : address);
  }

  release(address: string): void {
    this.entries.delete(address);
  }
}
