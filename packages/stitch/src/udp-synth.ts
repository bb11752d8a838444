/**
 * Synthesizes the packets of one UDP flow: one datagram per record. A datagram whose IP packet would exceed
 * the MTU is sent as IP fragments, as the sending host would have sent it: IPv4 fragments (MF flag, offsets in
 * 8-byte units, one id per datagram, DF clear) or IPv6 fragments (a Fragment extension header, RFC 8200 4.5).
 * Analyzers reassemble them; nothing is cut.
 */
import type { FrameSink } from "@cloudtap/packet";
import { fold32 } from "@cloudtap/packet";
import { sumBytesOf } from "@cloudtap/packet/copy-sum";
import {
  ETHERNET_HEADER,
  type FlowTemplates,
  IPV4_HEADER,
  put16,
  put32,
  UDP_HEADER,
} from "./frame-writer.js";

export interface UdpSynthOptions {
  readonly templates: FlowTemplates;
  readonly clientPort: number;
  readonly serverPort: number;
  readonly ipMtu: number;
  readonly ipIds: readonly [number, number];
}

export class UdpSynthStats {
  packets = 0;
  datagrams = 0;
  fragmentedDatagrams = 0;
  payloadBytes = 0;
  /** Datagrams too large for one IP packet (above 65,507 payload bytes in IPv4): not written. */
  oversizedDatagrams = 0;
  oversizedBytes = 0;
}

const IPV6_FRAGMENT_HEADER = 8;

export class UdpSynth {
  private readonly ipId: [number, number];
  private readonly udp = new Uint8Array(UDP_HEADER);

  constructor(
    private readonly sink: FrameSink,
    private readonly o: UdpSynthOptions,
    readonly stats: UdpSynthStats = new UdpSynthStats(),
  ) {
    this.ipId = [o.ipIds[0] & 0xffff, o.ipIds[1] & 0xffff];
  }

  /** Returns the header templates to their arena; the synthesizer must not be used afterwards. */
  release(): void {
    this.o.templates.release();
    (this.sink as FrameSink & { end?(): void }).end?.();
  }

  datagram(dir: 0 | 1, payload: Uint8Array, timestampNs: bigint): void {
    const t = this.o.templates;
    const udpLength = UDP_HEADER + payload.length;
    // The IP packet's own length field bounds a datagram: 65,507 payload bytes in IPv4 (65,535 less the
    // IPv4 and UDP headers), 65,527 in IPv6 (its payload length counts the UDP header only). Larger ones
    // cannot be written as a valid packet, fragmented or not: dropped and counted.
    if (udpLength + (t.ipHeader === IPV4_HEADER ? IPV4_HEADER : 0) > 0xffff) {
      this.stats.oversizedDatagrams++;
      this.stats.oversizedBytes += payload.length;
      return;
    }
    const [sport, dport] =
      dir === 0 ? [this.o.clientPort, this.o.serverPort] : [this.o.serverPort, this.o.clientPort];
    const u = this.udp;
    put16(u, 0, sport);
    put16(u, 2, dport);
    put16(u, 4, udpLength);
    put16(u, 6, 0);
    let sum = t.addressSum + 17 + udpLength + sport + dport + udpLength;
    sum = sumBytesOf(payload, 0, payload.length, sum);
    const check = ~fold32(sum) & 0xffff;
    put16(u, 6, check === 0 ? 0xffff : check);
    const id = this.ipId[dir];
    this.ipId[dir] = (id + 1) & 0xffff;
    this.stats.datagrams++;
    this.stats.payloadBytes += payload.length;

    const v4 = t.ipHeader === IPV4_HEADER;
    if (t.ipHeader + udpLength <= this.o.ipMtu) {
      const frame = this.sink.begin(ETHERNET_HEADER + t.ipHeader + udpLength);
      t.writeIp(dir, frame, udpLength, id, v4 ? 0 : undefined);
      frame.set(u, ETHERNET_HEADER + t.ipHeader);
      frame.set(payload, ETHERNET_HEADER + t.ipHeader + UDP_HEADER);
      this.sink.commit(timestampNs);
      this.stats.packets++;
      return;
    }
    // Fragments: each carries a multiple of 8 bytes of the IP payload (UDP header + data), the last the rest.
    this.stats.fragmentedDatagrams++;
    const room = this.o.ipMtu - t.ipHeader - (v4 ? 0 : IPV6_FRAGMENT_HEADER);
    const per = room & ~7;
    if (per < 8) return;
    for (let off = 0; off < udpLength; off += per) {
      const len = Math.min(per, udpLength - off);
      const more = off + len < udpLength;
      const extra = v4 ? 0 : IPV6_FRAGMENT_HEADER;
      const frame = this.sink.begin(ETHERNET_HEADER + t.ipHeader + extra + len);
      const ipPayload = extra + len;
      let p = ETHERNET_HEADER + t.ipHeader;
      if (v4) {
        t.writeIp(dir, frame, ipPayload, id, (more ? 0x2000 : 0) | (off >> 3));
      } else {
        t.writeIp(dir, frame, ipPayload, id);
        frame[ETHERNET_HEADER + 6] = 44; // next header: Fragment
        frame[p] = 17;
        frame[p + 1] = 0;
        put16(frame, p + 2, off | (more ? 1 : 0));
        put32(frame, p + 4, (id << 16) | dir);
        p += IPV6_FRAGMENT_HEADER;
      }
      // Copy [off, off + len) of the virtual IP payload "udp header + data".
      for (let k = off; k < off + len && k < UDP_HEADER; k++) frame[p + k - off] = u[k]!;
      const dataStart = Math.max(off, UDP_HEADER) - UDP_HEADER;
      const dataEnd = off + len - UDP_HEADER;
      if (dataEnd > dataStart)
        frame.set(payload.subarray(dataStart, dataEnd), p + Math.max(0, UDP_HEADER - off));
      this.sink.commit(timestampNs);
      this.stats.packets++;
    }
  }
}
