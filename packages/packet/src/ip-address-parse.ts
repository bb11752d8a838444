/** Parses IP address text into bytes: the inverse of `formatIpAddress`. */

function parseIpv4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    // Decimal only, no leading zeros: "010" is octal in some parsers, so it is refused rather than guessed.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return false;
    const value = Number(part);
    if (value > 255) return false;
    out[at + i] = value;
  }
  return true;
}

function parseGroups(text: string, out: number[]): boolean {
  if (text === "") return true;
  for (const group of text.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return false;
    out.push(Number.parseInt(group, 16));
  }
  return true;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  let body = text;
  let tailWords = 0;
  // A trailing dotted quad (::ffff:192.0.2.1, ::192.0.2.1) fills the last 32 bits.
  const lastColon = body.lastIndexOf(":");
  if (body.indexOf(".", lastColon) >= 0) {
    if (!parseIpv4Into(body.slice(lastColon + 1), out, 12)) return undefined;
    body = body.slice(0, lastColon + 1);
    if (body.endsWith(":") && !body.endsWith("::")) body = body.slice(0, -1);
    tailWords = 2;
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  if (!parseGroups(halves[0]!, head)) return undefined;
  if (halves.length === 2 && !parseGroups(halves[1]!, tail)) return undefined;
  const words = head.length + tail.length + tailWords;
  if (halves.length === 1 ? words !== 8 : words > 7) return undefined;
  head.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  const tailStart = 8 - tailWords - tail.length;
  tail.forEach((w, i) => {
    out[2 * (tailStart + i)] = w >> 8;
    out[2 * (tailStart + i) + 1] = w & 0xff;
  });
  return out;
}

/**
 * Parses "192.0.2.1" into 4 bytes or an IPv6 address in any RFC 4291 text form ("2001:db8::1",
 * "::ffff:192.0.2.1") into 16; undefined for anything else. IPv4 octets are decimal without leading zeros
 * ("010.1.2.3" is refused: some parsers read it as octal); zone ids ("%eth0") and prefix lengths are not
 * accepted. The one parser of address text in the workspace (tap-format's records, flow conditions, the
 * export policy and the stitcher all call it).
 */
export function tryParseIpAddress(text: string): Uint8Array | undefined {
  if (text.includes(":")) return parseIpv6(text);
  const v4 = new Uint8Array(4);
  return parseIpv4Into(text, v4, 0) ? v4 : undefined;
}

/** `tryParseIpAddress`, throwing `RangeError` for text that is not an address. */
export function parseIpAddress(text: string): Uint8Array {
  const address = tryParseIpAddress(text);
  if (address === undefined) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  return address;
}
