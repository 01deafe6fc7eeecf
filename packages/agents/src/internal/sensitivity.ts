/**
 * Which parameters have shown no effect, from the researcher's own results. Two finished trials
 * whose features differ in exactly one dimension are a controlled comparison of that parameter;
 * when their utilities are identical, the change had no effect. A parameter is *inert* once at
 * least `minTies` of its comparisons (default 1), and at least half of them, gave identical
 * results — the signature of a parameter the trainer ignores (or that is overridden), which
 * training runs do not otherwise produce: two runs with a change that matters rarely tie exactly
 * (on the recorded NMT tables, about 1 % of single-parameter pairs do, against two thirds of
 * zh-en's `bpe_symbols` pairs). Evidence to the contrary undoes it: a parameter whose changes
 * mostly did change the result is not inert.
 *
 * Incremental and bounded: each observation is hashed once per dimension with that dimension
 * masked, so its comparisons are the other members of its buckets (at most one per value of the
 * masked parameter, plus repeats), however many trials the tree holds.
 */

interface Entry {
  readonly value: number
  readonly utility: number
  readonly id: string | undefined
}

/** Node ids kept per dimension as the evidence of its ties, at most. */
const EVIDENCE = 8

/** Two utilities are identical when equal up to rounding (a relative 1e-9). */
const identical = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b))

/** Comparisons per parameter kept in one bucket, at most (repeats of a configuration beyond this are not compared). */
const BUCKET = 32

export class Sensitivity {
  private readonly buckets = new Map<string, Array<Entry>>()
  private pairs: Array<number> = []
  private ties: Array<number> = []
  private evidence: Array<Set<string>> = []
  private readonly minTies: number
  constructor(minTies = 1) {
    this.minTies = minTies
  }

  /**
   * Add a finished trial's features and utility (`undefined`, a failure, is not compared); `id`
   * names it in the evidence of the ties it takes part in.
   */
  add(x: ReadonlyArray<number>, utility: number | undefined, id?: string): void {
    if (utility === undefined || !Number.isFinite(utility)) return
    while (this.pairs.length < x.length) {
      this.pairs.push(0)
      this.ties.push(0)
      this.evidence.push(new Set())
    }
    for (let d = 0; d < x.length; d++) {
      const key = `${d}|${x.map((v, i) => (i === d ? "*" : v)).join(",")}`
      let bucket = this.buckets.get(key)
      if (bucket === undefined) this.buckets.set(key, (bucket = []))
      for (const e of bucket) {
        if (e.value === x[d]) continue
        this.pairs[d]!++
        if (identical(e.utility, utility)) {
          this.ties[d]!++
          const ev = this.evidence[d]!
          if (e.id !== undefined && id !== undefined && ev.size + 2 <= EVIDENCE) ev.add(e.id).add(id)
        }
      }
      if (bucket.length < BUCKET) bucket.push({ value: x[d]!, utility, id })
    }
  }

  /**
   * The dimensions measured to have no effect (never all of them: with every dimension tied, the
   * one with the fewest ties is kept).
   */
  inert(): ReadonlySet<number> {
    const out = new Set<number>()
    for (let d = 0; d < this.pairs.length; d++) {
      if (this.ties[d]! >= this.minTies && 2 * this.ties[d]! >= this.pairs[d]!) out.add(d)
    }
    if (out.size > 0 && out.size >= this.pairs.length) {
      let keep = 0
      for (let d = 1; d < this.pairs.length; d++) if (this.ties[d]! < this.ties[keep]!) keep = d
      out.delete(keep)
    }
    return out
  }

  /** Comparisons and identical results per dimension so far, and trials of the first ties. */
  counts(d: number): { readonly pairs: number; readonly ties: number; readonly evidence: ReadonlySet<string> } {
    return { pairs: this.pairs[d] ?? 0, ties: this.ties[d] ?? 0, evidence: this.evidence[d] ?? new Set() }
  }
}

/** A key for features with the `inert` dimensions masked: equal keys are the same configuration up to inert parameters. */
export const maskedKey = (x: ReadonlyArray<number>, inert: ReadonlySet<number>): string =>
  x.map((v, i) => (inert.has(i) ? "*" : v)).join(",")
