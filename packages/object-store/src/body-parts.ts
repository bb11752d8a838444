/**
 * A write body cut into parts of `partBytes` (the last one shorter; none for an empty body), each its own
 * buffer, so a part can be sent again on a retry: the multipart and block uploads of remote backends.
 */
export async function* partsOf(
  body: Uint8Array | AsyncIterable<Uint8Array>,
  partBytes: number,
): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) {
    for (let at = 0; at < body.length; at += partBytes) yield body.subarray(at, at + partBytes);
    return;
  }
  let pending: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    let c = chunk;
    while (size + c.length >= partBytes) {
      const take = partBytes - size;
      pending.push(c.subarray(0, take));
      yield Buffer.concat(pending);
      pending = [];
      size = 0;
      c = c.subarray(take);
    }
    if (c.length > 0) {
      pending.push(c.slice());
      size += c.length;
    }
  }
  if (size > 0) yield Buffer.concat(pending);
}
