/**
 * The observations a surrogate is fitted to, gathered incrementally as a tree grows and bounded,
 * so that choosing them costs the same in a tree of 100 nodes and of 100,000.
 */
import type { Observation } from "./surrogate.ts"

/**
 * Every observation while there are at most `all`; beyond that, the best `bestKept` successes
 * (kept sorted, best first; ties in arrival order) followed by the newest of the others — at least
 * `recentKept` (or `all`, if more) of them and at most twice that (trimmed in one slice when the list
 * doubles).
 */
export class ObservationSet {
  private readonly ids = new Set<string>()
  private recent: Array<Observation> = []
  private readonly best: Array<Observation> = []
  /** Observations added so far. */
  count = 0
  private readonly all: number
  private readonly bestKept: number
  private readonly recentKept: number

  constructor(options: { readonly all: number; readonly bestKept: number; readonly recentKept: number }) {
    this.all = options.all
    this.bestKept = options.bestKept
    // never fewer than `all`, which are all kept until there are more
    this.recentKept = Math.max(options.recentKept, options.all)
  }

  /** Whether the node's observation was added already. */
  has(id: string): boolean {
    return this.ids.has(id)
  }

  /** Add the observation of node `id` (once: a second add of the same id is ignored). */
  add(id: string, o: Observation): void {
    if (this.ids.has(id)) return
    this.ids.add(id)
    this.count++
    this.recent.push(o)
    if (this.recent.length > 2 * this.recentKept) this.recent = this.recent.slice(-this.recentKept)
    const best = this.best
    if (o.utility !== undefined && (best.length < this.bestKept || o.utility > best[best.length - 1]!.utility!)) {
      let i = best.length
      while (i > 0 && best[i - 1]!.utility! < o.utility) i--
      best.splice(i, 0, o)
      if (best.length > this.bestKept) best.pop()
    }
  }

  /** What the model sees (before its own choice of the nearest among them). */
  list(): ReadonlyArray<Observation> {
    if (this.count <= this.all) return this.recent
    const inBest = new Set(this.best)
    return [...this.best, ...this.recent.filter((o) => !inBest.has(o))]
  }
}
