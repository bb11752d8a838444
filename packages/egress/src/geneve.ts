/**
 * GENEVE (RFC 8926 section 3): an 8-byte base header, variable-length options, then the inner Ethernet frame
 * (protocol type 0x6558, "Transparent Ethernet Bridging"), carried in UDP.
 *
 *   |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 *   |        Virtual Network Identifier (VNI)       |    Reserved   |
 *   |                    Variable-Length Options                    |
 *
 * Option:  | Option Class (16) | Type (8) | R R R | Length (5) |  data (Length x 4 bytes)
 *
 * cloudtap's options carry per-flow metadata an NDR can use, in one option class from the IANA "Geneve
 * Option Class" registry's Experimental Use range (0xFF00-0xFFFF); see the package README for the types.
 * No option is critical (type bit 7 clear), so a receiver that does not know the class still decapsulates
 * the frame, and the C flag stays clear.
 */
import type { FrameFlowContext } from "@cloudtap/packet";
import { EgressError, EgressErrorCode } from "./errors.js";
import { checkVni } from "./vxlan.js";

/** IANA-assigned UDP destination port. */
export const GENEVE_PORT = 6081;
export const GENEVE_BASE_HEADER_BYTES = 8;
/** Protocol type of an inner Ethernet frame. */
export const GENEVE_PROTOCOL_ETHERNET = 0x6558;
/** The 6-bit Opt Len field counts 4-byte words: 63 x 4. */
export const GENEVE_MAX_OPTION_BYTES = 252;
/** One option's 5-bit length counts 4-byte words of data: 31 x 4. */
export const GENEVE_MAX_OPTION_DATA_BYTES = 124;
export const GENEVE_OPTION_HEADER_BYTES = 4;
/** Type bit 7: a receiver that does not understand the option must drop the packet. */
export const GENEVE_CRITICAL_TYPE = 0x80;

/**
 * cloudtap's option class: in the Experimental Use range (0xFF00-0xFFFF) of the IANA "Geneve Option Class"
 * registry, so it collides with no registered class. Configurable, for a site that already uses it.
 */
export const CLOUDTAP_GENEVE_OPTION_CLASS = 0xffca;

/** The metadata cloudtap can attach to each tunnelled frame, by name (as in a policy file). */
export const GeneveOption = {
  /** The 128-bit tapped connection id (16 bytes). */
  ConnectionId: "connection-id",
  /** 0 = original (as tapped), 1 = cleartext (the decrypted variant): 1 byte, then 3 zero bytes. */
  Variant: "variant",
  /** The `user` attribute (identity), UTF-8. */
  User: "user",
  Tenant: "tenant",
  App: "app",
  Device: "device",
  Policy: "policy",
} as const;
export type GeneveOption = (typeof GeneveOption)[keyof typeof GeneveOption];

/** The option type of each metadata field (critical bit clear). */
export const GeneveOptionType: Readonly<Record<GeneveOption, number>> = {
  "connection-id": 0x01,
  variant: 0x02,
  user: 0x03,
  tenant: 0x04,
  app: 0x05,
  device: 0x06,
  policy: 0x07,
};

/** What is sent unless configured otherwise. */
export const DEFAULT_GENEVE_OPTIONS: readonly GeneveOption[] = [
  GeneveOption.ConnectionId,
  GeneveOption.Variant,
  GeneveOption.User,
  GeneveOption.Tenant,
  GeneveOption.App,
];
/**
 * Default bound on the options of one packet. Every byte of it is taken from the inner packet's room under
 * the MTU (the stitcher segments to fit the largest bound), so the default keeps room for an e-mail sized
 * user name, a tenant and an app without shrinking segments by the full 252.
 */
export const DEFAULT_GENEVE_MAX_OPTION_BYTES = 128;

export interface GeneveOptionsConfig {
  /** Which metadata to send, in this order (earlier options win when the bound is reached). */
  readonly options: readonly GeneveOption[];
  /** Bound on all options of a packet, a multiple of 4 up to 252. */
  readonly maxOptionBytes: number;
  readonly optionClass: number;
}

export function geneveOptionsConfig(
  partial: Partial<GeneveOptionsConfig> = {},
  where = "geneve",
): GeneveOptionsConfig {
  const options = partial.options ?? DEFAULT_GENEVE_OPTIONS;
  const seen = new Set<string>();
  for (const o of options) {
    if (!(o in GeneveOptionType)) {
      throw new EgressError(
        EgressErrorCode.BadOption,
        `${where}: unknown GENEVE option "${o}" (known: ${Object.keys(GeneveOptionType).join(", ")})`,
      );
    }
    if (seen.has(o)) throw new EgressError(EgressErrorCode.BadOption, `${where}: option "${o}" given twice`);
    seen.add(o);
  }
  const maxOptionBytes = partial.maxOptionBytes ?? DEFAULT_GENEVE_MAX_OPTION_BYTES;
  if (
    !Number.isInteger(maxOptionBytes) ||
    maxOptionBytes < 0 ||
    maxOptionBytes > GENEVE_MAX_OPTION_BYTES ||
    maxOptionBytes % 4 !== 0
  ) {
    throw new EgressError(
      EgressErrorCode.BadOption,
      `${where}: maxOptionBytes ${maxOptionBytes} is not a multiple of 4 in 0..${GENEVE_MAX_OPTION_BYTES}`,
    );
  }
  const optionClass = partial.optionClass ?? CLOUDTAP_GENEVE_OPTION_CLASS;
  if (!Number.isInteger(optionClass) || optionClass < 0 || optionClass > 0xffff) {
    throw new EgressError(EgressErrorCode.BadOption, `${where}: option class ${optionClass} is not 16-bit`);
  }
  return { options, maxOptionBytes, optionClass };
}

/** The options' bytes could not all be sent: how many were cut short, and how many left out. */
export interface GeneveOptionsEncoding {
  readonly bytes: Uint8Array;
  /** String options cut to fit (at a UTF-8 character boundary). */
  readonly truncated: number;
  /** Options left out because the bound was reached (or a connection id was not 32 hex digits). */
  readonly omitted: number;
}

const textEncoder = new TextEncoder();

/** The longest prefix of `bytes` of at most `max` bytes that ends at a UTF-8 character boundary. */
function utf8Prefix(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes;
  let end = max;
  // Back up over continuation bytes (10xxxxxx) so that no character is split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

function optionValue(flow: FrameFlowContext, option: GeneveOption): Uint8Array | undefined {
  switch (option) {
    case GeneveOption.ConnectionId: {
      if (!/^[0-9a-fA-F]{32}$/.test(flow.connId)) return undefined;
      const b = new Uint8Array(16);
      for (let i = 0; i < 16; i++) b[i] = Number.parseInt(flow.connId.slice(2 * i, 2 * i + 2), 16);
      return b;
    }
    case GeneveOption.Variant:
      return Uint8Array.of(flow.variant === "cleartext" ? 1 : 0, 0, 0, 0);
    default: {
      const text = flow.attributes[option];
      return text ? textEncoder.encode(text) : undefined;
    }
  }
}

/**
 * The options for one flow. Fixed-size options (connection id, variant) are sent whole or left out; text
 * options are cut to the room left (each to at most 124 bytes) and padded with zero bytes to a multiple of
 * 4 (a receiver strips trailing NULs).
 */
export function encodeGeneveOptions(
  flow: FrameFlowContext,
  config: GeneveOptionsConfig,
): GeneveOptionsEncoding {
  const parts: { type: number; data: Uint8Array; padded: number }[] = [];
  let room = config.maxOptionBytes;
  let truncated = 0;
  let omitted = 0;
  for (const option of config.options) {
    const value = optionValue(flow, option);
    if (value === undefined) {
      if (option === GeneveOption.ConnectionId) omitted++;
      continue;
    }
    const fixed = option === GeneveOption.ConnectionId || option === GeneveOption.Variant;
    const space = Math.min(room - GENEVE_OPTION_HEADER_BYTES, GENEVE_MAX_OPTION_DATA_BYTES);
    if (fixed ? value.length > space : space < 4) {
      omitted++;
      continue;
    }
    const data = fixed ? value : utf8Prefix(value, space);
    if (data.length === 0) {
      omitted++;
      continue;
    }
    if (data.length < value.length) truncated++;
    const padded = (data.length + 3) & ~3;
    parts.push({ type: GeneveOptionType[option], data, padded });
    room -= GENEVE_OPTION_HEADER_BYTES + padded;
  }
  const bytes = new Uint8Array(config.maxOptionBytes - room);
  let at = 0;
  for (const p of parts) {
    bytes[at] = config.optionClass >>> 8;
    bytes[at + 1] = config.optionClass & 0xff;
    bytes[at + 2] = p.type;
    bytes[at + 3] = p.padded / 4;
    bytes.set(p.data, at + GENEVE_OPTION_HEADER_BYTES);
    at += GENEVE_OPTION_HEADER_BYTES + p.padded;
  }
  return { bytes, truncated, omitted };
}

/** Writes the base header and `options` at `at`: 8 + options.length bytes. */
export function writeGeneveHeader(buffer: Uint8Array, at: number, vni: number, options: Uint8Array): void {
  buffer[at] = options.length >>> 2; // version 0 in the top two bits
  buffer[at + 1] = 0; // O and C clear: a data packet, no critical option
  buffer[at + 2] = GENEVE_PROTOCOL_ETHERNET >>> 8;
  buffer[at + 3] = GENEVE_PROTOCOL_ETHERNET & 0xff;
  buffer[at + 4] = (vni >>> 16) & 0xff;
  buffer[at + 5] = (vni >>> 8) & 0xff;
  buffer[at + 6] = vni & 0xff;
  buffer[at + 7] = 0;
  buffer.set(options, at + GENEVE_BASE_HEADER_BYTES);
}

/** The whole header (base and options) as a new array, for a per-flow template. */
export function geneveHeader(vni: number, options: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkVni(vni);
  if (options.length % 4 !== 0 || options.length > GENEVE_MAX_OPTION_BYTES) {
    throw new EgressError(
      EgressErrorCode.BadOption,
      `GENEVE options of ${options.length} bytes: not a multiple of 4 up to ${GENEVE_MAX_OPTION_BYTES}`,
    );
  }
  const b = new Uint8Array(GENEVE_BASE_HEADER_BYTES + options.length);
  writeGeneveHeader(b, 0, vni, options);
  return b;
}

export interface ParsedGeneveOption {
  readonly optionClass: number;
  /** Without the critical bit. */
  readonly type: number;
  readonly critical: boolean;
  readonly data: Uint8Array;
}

export interface ParsedGeneve {
  readonly version: number;
  readonly oam: boolean;
  readonly critical: boolean;
  readonly protocolType: number;
  readonly vni: number;
  readonly options: readonly ParsedGeneveOption[];
  /** The payload after the options (an Ethernet frame for protocol 0x6558): a view into the input. */
  readonly payload: Uint8Array;
}

/** Parses a GENEVE UDP payload; undefined when it is malformed (lengths past the end, version not 0). */
export function parseGeneve(payload: Uint8Array): ParsedGeneve | undefined {
  if (payload.length < GENEVE_BASE_HEADER_BYTES) return undefined;
  const version = payload[0]! >>> 6;
  const optionBytes = (payload[0]! & 0x3f) * 4;
  if (version !== 0 || payload.length < GENEVE_BASE_HEADER_BYTES + optionBytes) return undefined;
  const options: ParsedGeneveOption[] = [];
  let at = GENEVE_BASE_HEADER_BYTES;
  const end = GENEVE_BASE_HEADER_BYTES + optionBytes;
  while (at < end) {
    if (at + GENEVE_OPTION_HEADER_BYTES > end) return undefined;
    const length = (payload[at + 3]! & 0x1f) * 4;
    const dataAt = at + GENEVE_OPTION_HEADER_BYTES;
    if (dataAt + length > end) return undefined;
    options.push({
      optionClass: (payload[at]! << 8) | payload[at + 1]!,
      type: payload[at + 2]! & ~GENEVE_CRITICAL_TYPE,
      critical: (payload[at + 2]! & GENEVE_CRITICAL_TYPE) !== 0,
      data: payload.subarray(dataAt, dataAt + length),
    });
    at = dataAt + length;
  }
  return {
    version,
    oam: (payload[1]! & 0x80) !== 0,
    critical: (payload[1]! & 0x40) !== 0,
    protocolType: (payload[2]! << 8) | payload[3]!,
    vni: (payload[4]! << 16) | (payload[5]! << 8) | payload[6]!,
    options,
    payload: payload.subarray(end),
  };
}
