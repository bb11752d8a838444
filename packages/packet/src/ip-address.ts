/** Text forms of IP addresses: dotted quad for IPv4, RFC 5952 canonical form for IPv6. */

export function formatIpv4(address: Uint8Array): string {
  if (address.length !== 4) throw new RangeError(`IPv4 address must be 4 bytes, got ${address.length}`);
  return `${address[0]}.${address[1]}.${address[2]}.${address[3]}`;
}

/**
 * RFC 5952: lower-case hex, no leading zeros, the longest run of two or more zero groups (the first one on
 * a tie) replaced by "::", and IPv4-mapped addresses (::ffff:0:0/96) written with a dotted quad (section 5).
 */
export function formatIpv6(address: Uint8Array): string {
  if (address.length !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${address.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i]! << 8) | address[i + 1]!);

  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(address.subarray(12))}`;
  }

  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }

  const hex = (g: number): string => g.toString(16);
  if (bestStart < 0) return groups.map(hex).join(":");
  const head = groups.slice(0, bestStart).map(hex).join(":");
  const tail = groups
    .slice(bestStart + bestLength)
    .map(hex)
    .join(":");
  return `${head}::${tail}`;
}

/** Formats a 4- or 16-byte address. */
export function formatIpAddress(address: Uint8Array): string {
  return address.length === 4 ? formatIpv4(address) : formatIpv6(address);
}
