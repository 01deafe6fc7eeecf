/**
 * The flat categorical Tree-structured Parzen Estimator: split finished trials into good and
 * bad by a quantile, fit smoothed per-parameter categorical densities l(x) (good) and g(x)
 * (bad), and rank candidates drawn from l by log l(x) - log g(x).
 */
import type { SearchSpace } from "@trex/core"
import type { Point } from "./tpeSpace.ts"

/** A finished trial: its point and utility (larger is better), `undefined` for a failure. */
export interface Observation {
  readonly point: Point
  readonly utility: number | undefined
}

/** Good: the best `ceil(gamma × successes)` (at least one); bad: the rest and every failure. */
export const split = (
  observations: ReadonlyArray<Observation>,
  gamma: number
): { readonly good: ReadonlyArray<Point>; readonly bad: ReadonlyArray<Point> } => {
  const scored = observations.filter((o) => o.utility !== undefined).sort((a, b) => b.utility! - a.utility!)
  const nGood = Math.max(1, Math.ceil(gamma * scored.length))
  return {
    good: scored.slice(0, nGood).map((o) => o.point),
    bad: [...scored.slice(nGood), ...observations.filter((o) => o.utility === undefined)].map((o) => o.point)
  }
}

/** Per parameter, the probability of each value: (count + prior) / (n + prior × k). */
export type Density = ReadonlyArray<ReadonlyArray<number>>

/** Smoothed categorical densities of the points, one per parameter. */
export const density = (space: SearchSpace.SearchSpace, points: ReadonlyArray<Point>, prior: number): Density =>
  space.parameters.map((p, i) => {
    const counts = new Array<number>(p.values.length).fill(prior)
    for (const pt of points) counts[pt[i]!]! += 1
    const total = points.length + prior * p.values.length
    return counts.map((c) => c / total)
  })

/** Draw a point from a density with a uniform source in [0, 1). */
export const sample = (d: Density, next: () => number): Point =>
  d.map((probs) => {
    let u = next()
    for (let k = 0; k < probs.length; k++) {
      u -= probs[k]!
      if (u < 0) return k
    }
    return probs.length - 1
  })

/** The acquisition: log l(x) - log g(x) (TPE's proxy for expected improvement). */
export const score = (point: Point, l: Density, g: Density): number =>
  point.reduce((acc, k, i) => acc + Math.log(l[i]![k]!) - Math.log(g[i]![k]!), 0)
