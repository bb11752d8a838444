// Helpers for the tests of this package: hand-built pcap and pcapng bytes, independent of the writers.

export class ByteBuilder {
  readonly #parts: number[] = [];
  constructor(readonly littleEndian: boolean) {}

  u8(...values: number[]): this {
    this.#parts.push(...values);
    return this;
  }

  u16(value: number): this {
    return this.littleEndian ? this.u8(value & 0xff, value >> 8) : this.u8(value >> 8, value & 0xff);
  }

  u32(value: number): this {
    const b = [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
    return this.u8(...(this.littleEndian ? b.reverse() : b));
  }

  bytes(data: Uint8Array | readonly number[], padTo4 = false): this {
    this.#parts.push(...data);
    if (padTo4) while (this.#parts.length % 4 !== 0) this.#parts.push(0);
    return this;
  }

  get length(): number {
    return this.#parts.length;
  }

  build(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
}

/** One pcapng block with correct leading and trailing lengths. */
export function pcapngBlock(le: boolean, type: number, body: (b: ByteBuilder) => void): Uint8Array {
  const inner = new ByteBuilder(le);
  body(inner);
  const bodyBytes = inner.build();
  const length = 12 + ((bodyBytes.length + 3) & ~3);
  return new ByteBuilder(le).u32(type).u32(length).bytes(bodyBytes, true).u32(length).build();
}

export function sectionHeader(le: boolean): Uint8Array {
  return pcapngBlock(le, 0x0a0d0d0a, (b) => b.u32(0x1a2b3c4d).u16(1).u16(0).u32(0xffffffff).u32(0xffffffff));
}

export function interfaceDescription(
  le: boolean,
  linkType: number,
  options: { tsresol?: number; tsoffset?: bigint } = {},
): Uint8Array {
  return pcapngBlock(le, 1, (b) => {
    b.u16(linkType).u16(0).u32(0);
    if (options.tsresol !== undefined) b.u16(9).u16(1).bytes([options.tsresol], true);
    if (options.tsoffset !== undefined) {
      const high = Number(BigInt.asUintN(64, options.tsoffset) >> 32n);
      const low = Number(BigInt.asUintN(64, options.tsoffset) & 0xffffffffn);
      b.u16(14).u16(8);
      if (le) b.u32(low).u32(high);
      else b.u32(high).u32(low);
    }
    if (options.tsresol !== undefined || options.tsoffset !== undefined) b.u32(0);
  });
}

export function enhancedPacket(
  le: boolean,
  interfaceId: number,
  ticks: bigint,
  data: Uint8Array,
  originalLength = data.length,
): Uint8Array {
  return pcapngBlock(le, 6, (b) =>
    b
      .u32(interfaceId)
      .u32(Number(ticks >> 32n))
      .u32(Number(ticks & 0xffffffffn))
      .u32(data.length)
      .u32(originalLength)
      .bytes(data, true),
  );
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Yields `bytes` in pieces of `size` (1 exercises every boundary). */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
