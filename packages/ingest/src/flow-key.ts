import type { Endpoint } from "@cloudtap/tap-format";

/**
 * The key of a flow in the connection table: the same for A->B and B->A, so that both directions of a
 * connection find one entry. Endpoints are ordered by their text form; `|` cannot occur in an address.
 */
export function flowKey(transport: number, a: Endpoint, b: Endpoint): string {
  const left = `${a.address}|${a.port}`;
  const right = `${b.address}|${b.port}`;
  return left < right ? `${transport}|${left}|${right}` : `${transport}|${right}|${left}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.address === b.address;
}
