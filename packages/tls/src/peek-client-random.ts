/**
 * The client random of a connection's first client bytes, without a TLS session: a handshake record
 * (type 22) whose first message is a ClientHello (type 1) has the 32-byte random at a fixed place (record
 * header 5, handshake header 4, legacy version 2). Lets a stitcher ask for a connection's keys before it
 * stitches the connection, so keys that live in another process are there when the session needs them.
 */
export function peekClientRandom(firstBytes: Uint8Array): Uint8Array | undefined {
  if (firstBytes.length < 43) return undefined;
  if (firstBytes[0] !== 22 || firstBytes[1] !== 3 || firstBytes[5] !== 1) return undefined;
  return firstBytes.subarray(11, 43);
}
