/** Joins an async iterable of chunks into one array. */
export async function readAll(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of source) {
    parts.push(c);
    n += c.length;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of parts) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}
