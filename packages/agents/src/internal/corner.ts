/**
 * Corner completion for the heuristic researcher: the pair of parameter settings (parameter A at
 * value a, parameter B at value b) whose finished results score best on average, among the pairs
 * seen at least twice, is a corner of the space the results point at. When few of a finite pool's
 * configurations are left untried in that corner, they are run before any other candidate, the
 * model's expected improvement ordering them among themselves.
 *
 * Why: on a table whose best configuration sits where two settings meet and whose other
 * parameters go against the main trend (NMTHPO zh-en: embedding 512 with learning rate 3e-4, and
 * there 16 heads and feed-forward 1024 where most of the table favours 8 and 2048), neither the
 * Gaussian process nor a model of main effects ranks the best highly from 5-20 results, but the
 * pair's mean does point at its corner, and a corner of a few configurations is cheap to complete.
 * A corner with many configurations left is not: there the model's ranking decides, as before
 * (docs/benchmarks.md, "Search quality").
 */
import * as Surrogate from "./surrogate.ts"

/** A pair of settings: feature `i` at `a` and feature `j` at `b`, with the mean normal score of its results. */
export interface Corner {
  readonly i: number
  readonly a: number
  readonly j: number
  readonly b: number
  readonly mean: number
  readonly count: number
}

/** Results a pair needs before its mean counts. */
const MIN_COUNT = 2
/** Untried configurations a corner may have left to be completed first (more: the model ranks as usual). */
export const MAX_LEFT = 14

/** The order results are summed in, and equal means broken by: their features, then their results (a function of the results alone). */
const byContent = (p: Surrogate.Observation, q: Surrogate.Observation): number => {
  for (let d = 0; d < Math.min(p.x.length, q.x.length); d++) if (p.x[d] !== q.x[d]) return p.x[d]! - q.x[d]!
  return p.x.length - q.x.length || (p.utility ?? -Infinity) - (q.utility ?? -Infinity)
}

/** Whether pair `p` comes before pair `q` among equal means: the lower dimensions, then the lower values. */
const earlier = (p: { readonly i: number; readonly a: number; readonly j: number; readonly b: number }, q: Corner): boolean =>
  p.i !== q.i ? p.i < q.i : p.j !== q.j ? p.j < q.j : p.a !== q.a ? p.a < q.a : p.b < q.b

/**
 * The pair of settings whose results have the highest mean normal score (a failure counting as the
 * worst success), among the pairs seen at least twice, ignoring the dimensions in `inert` (measured
 * to make no difference); `undefined` with fewer than two successes or no pair seen twice. A function
 * of the results alone, not of the order they came in (a resumed run's researcher reads them in
 * another order than one that watched them finish): they are summed in an order of their own, and
 * equal means go to the lower dimensions, then the lower values.
 */
export const best = (given: ReadonlyArray<Surrogate.Observation>, inert: ReadonlySet<number>): Corner | undefined => {
  const observations = [...given].sort(byContent)
  const ok = observations.flatMap((o) => (o.utility === undefined ? [] : [o.utility]))
  if (ok.length < 2) return undefined
  const worst = Math.min(...ok)
  const y = Surrogate.normalScores(observations.map((o) => o.utility ?? worst))
  const sums = new Map<string, { i: number; a: number; j: number; b: number; sum: number; count: number }>()
  for (let k = 0; k < observations.length; k++) {
    const x = observations[k]!.x
    for (let i = 0; i < x.length; i++) {
      if (inert.has(i)) continue
      for (let j = i + 1; j < x.length; j++) {
        if (inert.has(j)) continue
        const key = `${i}:${x[i]}:${j}:${x[j]}`
        let e = sums.get(key)
        if (e === undefined) sums.set(key, (e = { i, a: x[i]!, j, b: x[j]!, sum: 0, count: 0 }))
        e.sum += y[k]!
        e.count++
      }
    }
  }
  let out: Corner | undefined
  for (const e of sums.values()) {
    if (e.count < MIN_COUNT) continue
    const mean = e.sum / e.count
    if (out === undefined || mean > out.mean || (mean === out.mean && earlier(e, out))) out = { i: e.i, a: e.a, j: e.j, b: e.b, mean, count: e.count }
  }
  return out
}

/** Whether a feature vector lies in the corner. */
export const contains = (corner: Corner, x: ReadonlyArray<number>): boolean => x[corner.i] === corner.a && x[corner.j] === corner.b
