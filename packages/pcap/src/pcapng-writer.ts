import { BufferedSink } from "./buffered-sink.js";
import type { ByteSink } from "./byte-sink.js";
import { SecretsType } from "./capture-item.js";
import { PcapWriteError, PcapWriteErrorCode } from "./errors.js";
import {
  checkPacketLengths,
  DEFAULT_SNAP_LENGTH,
  DEFAULT_WRITE_CHUNK_BYTES,
  type PacketToWrite,
} from "./pcap-writer.js";
import { PCAPNG_BYTE_ORDER_MAGIC, PcapngBlockType, PcapngOption } from "./pcapng-reader.js";

export interface PcapngWriterOptions {
  /** Written as the section's shb_userappl option when set. */
  readonly userApplication?: string;
  /** Default true. */
  readonly littleEndian?: boolean;
  /** Default `DEFAULT_WRITE_CHUNK_BYTES`. */
  readonly chunkBytes?: number;
}

export interface PcapngInterface {
  readonly linkType: number;
  /** Default `DEFAULT_SNAP_LENGTH`. */
  readonly snapLength?: number;
  /** Written as if_name when set. */
  readonly name?: string;
}

export interface PcapngPacketToWrite extends PacketToWrite {
  /** An id returned by `addInterface`. */
  readonly interfaceId: number;
}

export interface PcapngWriter {
  /**
   * Declares an interface (an Interface Description Block with nanosecond timestamps) and returns its id.
   * The Section Header Block is written before the first block of any kind, exactly once.
   */
  addInterface(spec: PcapngInterface): Promise<number>;
  /** Writes an Enhanced Packet Block. */
  writePacket(packet: PcapngPacketToWrite): Promise<void>;
  /** Writes a Decryption Secrets Block. */
  writeSecrets(secretsType: number, data: Uint8Array): Promise<void>;
  /** Writes a Decryption Secrets Block of type TLS key log holding NSS key log text. */
  writeTlsKeyLog(text: string): Promise<void>;
  /** Passes everything buffered to the sink (writing the section header if nothing was written). */
  flush(): Promise<void>;
  readonly packetsWritten: number;
  readonly bytesWritten: number;
}

const encoder = new TextEncoder();
const pad4 = (n: number): number => (n + 3) & ~3;

interface Option {
  readonly code: number;
  readonly value: Uint8Array;
}

function optionsLength(options: readonly Option[]): number {
  if (options.length === 0) return 0;
  return options.reduce((n, o) => n + 4 + pad4(o.value.length), 0) + 4;
}

class SinkPcapngWriter implements PcapngWriter {
  readonly #out: BufferedSink;
  readonly #le: boolean;
  readonly #userApplication: string | undefined;
  #sectionWritten = false;
  #interfaces = 0;
  packetsWritten = 0;

  constructor(sink: ByteSink, options: PcapngWriterOptions) {
    this.#out = new BufferedSink(sink, options.chunkBytes ?? DEFAULT_WRITE_CHUNK_BYTES);
    this.#le = options.littleEndian ?? true;
    this.#userApplication = options.userApplication;
  }

  get bytesWritten(): number {
    return this.#out.bytesWritten;
  }

  /** Writes one block: `fixed` body bytes, then `data` padded to 4, then options. */
  async #block(
    type: number,
    fixed: number,
    fill: (view: DataView) => void,
    data: Uint8Array,
    options: readonly Option[],
  ): Promise<void> {
    if (!this.#sectionWritten && type !== PcapngBlockType.SectionHeader) await this.#writeSection();
    const length = 12 + fixed + pad4(data.length) + optionsLength(options);
    const block = await this.#out.reserve(length);
    block.fill(0);
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
    view.setUint32(0, type, this.#le);
    view.setUint32(4, length, this.#le);
    fill(new DataView(block.buffer, block.byteOffset + 8, fixed));
    block.set(data, 8 + fixed);
    let at = 8 + fixed + pad4(data.length);
    if (options.length > 0) {
      for (const o of options) {
        view.setUint16(at, o.code, this.#le);
        view.setUint16(at + 2, o.value.length, this.#le);
        block.set(o.value, at + 4);
        at += 4 + pad4(o.value.length);
      }
      at += 4; // opt_endofopt: code 0, length 0 (already zero)
    }
    view.setUint32(length - 4, length, this.#le);
  }

  async #writeSection(): Promise<void> {
    this.#sectionWritten = true;
    const options: Option[] = [];
    if (this.#userApplication !== undefined) {
      options.push({ code: PcapngOption.ShbUserAppl, value: encoder.encode(this.#userApplication) });
    }
    await this.#block(
      PcapngBlockType.SectionHeader,
      16,
      (v) => {
        v.setUint32(0, PCAPNG_BYTE_ORDER_MAGIC, this.#le);
        v.setUint16(4, 1, this.#le);
        v.setUint16(6, 0, this.#le);
        v.setBigInt64(8, -1n, this.#le); // section length not specified
      },
      new Uint8Array(0),
      options,
    );
  }

  async addInterface(spec: PcapngInterface): Promise<number> {
    const options: Option[] = [{ code: PcapngOption.IfTsResol, value: Uint8Array.of(9) }];
    if (spec.name !== undefined)
      options.push({ code: PcapngOption.IfName, value: encoder.encode(spec.name) });
    await this.#block(
      PcapngBlockType.InterfaceDescription,
      8,
      (v) => {
        v.setUint16(0, spec.linkType, this.#le);
        v.setUint32(4, spec.snapLength ?? DEFAULT_SNAP_LENGTH, this.#le);
      },
      new Uint8Array(0),
      options,
    );
    return this.#interfaces++;
  }

  async writePacket(packet: PcapngPacketToWrite): Promise<void> {
    const { captured, original } = checkPacketLengths(packet);
    if (
      !Number.isInteger(packet.interfaceId) ||
      packet.interfaceId < 0 ||
      packet.interfaceId >= this.#interfaces
    ) {
      throw new PcapWriteError(
        PcapWriteErrorCode.UnknownInterface,
        `interface ${packet.interfaceId} was not added (${this.#interfaces} interfaces)`,
      );
    }
    if (packet.timestampNs < 0n || packet.timestampNs > 0xffff_ffff_ffff_ffffn) {
      throw new PcapWriteError(
        PcapWriteErrorCode.BadTimestamp,
        `timestamp ${packet.timestampNs} ns does not fit 64 bits`,
      );
    }
    const ts = packet.timestampNs;
    await this.#block(
      PcapngBlockType.EnhancedPacket,
      20,
      (v) => {
        v.setUint32(0, packet.interfaceId, this.#le);
        v.setUint32(4, Number(ts >> 32n), this.#le);
        v.setUint32(8, Number(ts & 0xffff_ffffn), this.#le);
        v.setUint32(12, captured, this.#le);
        v.setUint32(16, original, this.#le);
      },
      packet.data,
      [],
    );
    this.packetsWritten++;
  }

  async writeSecrets(secretsType: number, data: Uint8Array): Promise<void> {
    await this.#block(
      PcapngBlockType.DecryptionSecrets,
      8,
      (v) => {
        v.setUint32(0, secretsType, this.#le);
        v.setUint32(4, data.length, this.#le);
      },
      data,
      [],
    );
  }

  writeTlsKeyLog(text: string): Promise<void> {
    return this.writeSecrets(SecretsType.TlsKeyLog, encoder.encode(text));
  }

  async flush(): Promise<void> {
    if (!this.#sectionWritten) await this.#writeSection();
    await this.#out.flush();
  }
}

export function createPcapngWriter(sink: ByteSink, options: PcapngWriterOptions = {}): PcapngWriter {
  return new SinkPcapngWriter(sink, options);
}
