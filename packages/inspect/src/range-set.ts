/** A set of half-open byte ranges `[start, end)`, kept merged and sorted. */
export class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  /** Adds a range; returns how many of its bytes were already present (duplicates or overlaps). */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    // First range whose end is >= start (may touch or overlap the new one).
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    let i = lo;
    let covered = 0;
    let s = start;
    let e = end;
    while (i < this.starts.length && this.starts[i]! <= end) {
      covered += Math.max(0, Math.min(end, this.ends[i]!) - Math.max(start, this.starts[i]!));
      s = Math.min(s, this.starts[i]!);
      e = Math.max(e, this.ends[i]!);
      i++;
    }
    this.starts.splice(lo, i - lo, s);
    this.ends.splice(lo, i - lo, e);
    return covered;
  }

  get size(): number {
    let n = 0;
    for (let i = 0; i < this.starts.length; i++) n += this.ends[i]! - this.starts[i]!;
    return n;
  }

  get count(): number {
    return this.starts.length;
  }

  get end(): number {
    return this.ends.at(-1) ?? 0;
  }

  ranges(): [number, number][] {
    return this.starts.map((s, i) => [s, this.ends[i]!]);
  }

  /** The holes in `[0, upTo)`. */
  holes(upTo: number): [number, number][] {
    const out: [number, number][] = [];
    let p = 0;
    for (let i = 0; i < this.starts.length && p < upTo; i++) {
      if (this.starts[i]! > p) out.push([p, Math.min(this.starts[i]!, upTo)]);
      p = Math.max(p, this.ends[i]!);
    }
    if (p < upTo) out.push([p, upTo]);
    return out;
  }
}
