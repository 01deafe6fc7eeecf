/**
 * The heuristic researcher's surrogate: a Gaussian process over the finished results of the tree,
 * used to rank candidate children by expected improvement before proposing them.
 *
 * Inputs are positions in the declared search space (ordinal and log parameters: index scaled to
 * [0, 1]; categorical parameters: one-hot, scaled so that two different values are 1 apart).
 * Outputs are utilities (larger is better) standardised to mean 0 and variance 1; a failed trial
 * counts as the worst success. The kernel is an even mix of a Matérn 5/2 kernel on the distance
 * between positions and an additive one (a Matérn 5/2 per parameter, averaged), so main effects
 * of single parameters carry over between distant configurations; its length scale and the noise
 * level are chosen by the marginal likelihood over a small grid. Fitting is O(n^3) in the number of
 * observations, so the model keeps at most `maxObservations` of them (the best and the nearest).
 */
import { SearchSpace, type Strategy } from "@trex/core"

/** A finished trial: its features and utility (larger is better); `undefined` for a failure. */
export interface Observation {
  readonly x: ReadonlyArray<number>
  readonly utility: number | undefined
}

/** A kernel's hyperparameters: length scale (times the square root of the dimension) and noise variance. */
export interface Hyper {
  readonly scale: number
  readonly noise: number
}

/** A fitted model. */
export interface Model {
  readonly hyper: Hyper
  /** Expected improvement over the best observation at `x` (in standard deviations of the outputs). */
  readonly expectedImprovement: (x: ReadonlyArray<number>) => number
  readonly predict: (x: ReadonlyArray<number>) => { readonly mean: number; readonly sd: number }
}

/** The feature vector of a strategy in a space. */
export const features = (space: SearchSpace.SearchSpace, strategy: Strategy.Strategy): Array<number> => {
  const out: Array<number> = []
  for (const p of space.parameters) {
    if (p.values.length <= 1) continue
    const i = SearchSpace.indexOf(p, strategy)
    // categorical values as -(index + 1): two different ones are 1 apart
    out.push(p.kind === "categorical" ? -(i + 1) : i / (p.values.length - 1))
  }
  return out
}

const gap = (a: number, b: number) => (a < 0 || b < 0 ? (a === b ? 0 : 1) : Math.abs(a - b))
/** Weight of the additive part of the kernel (tuned on the recorded tables in bench/). */
const MIX = 0.5

const matern52 = (r: number, ell: number): number => {
  const s = (Math.sqrt(5) * r) / ell
  return (1 + s + (s * s) / 3) * Math.exp(-s)
}

const distance = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  let acc = 0
  for (let i = 0; i < a.length; i++) {
    const d = gap(a[i]!, b[i]!)
    acc += d * d
  }
  return Math.sqrt(acc)
}

/** The kernel: a mix of Matérn 5/2 on the whole distance and an additive one, per parameter. */
const kernel = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, ell: number, ellAdd: number, mix: number): number => {
  let full = 1
  if (mix < 1) full = matern52(distance(a, b), ell)
  if (mix <= 0) return full
  let add = 0
  for (let i = 0; i < a.length; i++) add += matern52(gap(a[i]!, b[i]!), ellAdd)
  add /= Math.max(1, a.length)
  return (1 - mix) * full + mix * add
}

/** Cholesky factor (lower, row-major) of a symmetric positive-definite matrix, or undefined. */
const cholesky = (a: Float64Array, n: number): Float64Array | undefined => {
  const l = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j]!
      for (let k = 0; k < j; k++) sum -= l[i * n + k]! * l[j * n + k]!
      if (i === j) {
        if (!(sum > 0)) return undefined
        l[i * n + i] = Math.sqrt(sum)
      } else {
        l[i * n + j] = sum / l[j * n + j]!
      }
    }
  }
  return l
}

/** Solve L z = b (forward substitution). */
const forward = (l: Float64Array, n: number, b: ArrayLike<number>): Float64Array => {
  const z = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    let sum = b[i]!
    for (let k = 0; k < i; k++) sum -= l[i * n + k]! * z[k]!
    z[i] = sum / l[i * n + i]!
  }
  return z
}

/** Solve L^T z = b (backward substitution). */
const backward = (l: Float64Array, n: number, b: ArrayLike<number>): Float64Array => {
  const z = new Float64Array(n)
  for (let i = n - 1; i >= 0; i--) {
    let sum = b[i]!
    for (let k = i + 1; k < n; k++) sum -= l[k * n + i]! * z[k]!
    z[i] = sum / l[i * n + i]!
  }
  return z
}

const normPdf = (z: number) => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI)
/** Standard normal CDF (Abramowitz–Stegun 7.1.26 on erf, error < 1.5e-7). */
const normCdf = (z: number) => {
  const x = Math.abs(z) / Math.SQRT2
  const t = 1 / (1 + 0.3275911 * x)
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x)
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf)
}

/** Length scales (times sqrt of the dimension) and noise variances tried when fitting. */
const lengthScales = [0.05, 0.1, 0.2, 0.35, 0.6, 1]
const noises = [1e-4, 1e-2, 0.1]

/**
 * Fit a model, or `undefined` when there are fewer than `minObservations` successes or
 * the outputs do not vary.
 */
export const fit = (
  observations: ReadonlyArray<Observation>,
  options: {
    readonly minObservations: number
    readonly maxObservations: number
    readonly near?: ReadonlyArray<number>
    /** Reuse these hyperparameters instead of searching the grid (one factorisation instead of 18). */
    readonly hyper?: Hyper
  }
): Model | undefined => {
  const successes = observations.filter((o) => o.utility !== undefined)
  if (successes.length < options.minObservations || successes.length === 0) return undefined
  let kept: ReadonlyArray<Observation> = observations
  if (kept.length > options.maxObservations) {
    // The best half by utility, the rest nearest to where candidates come from.
    const half = Math.floor(options.maxObservations / 2)
    const best = [...successes].sort((a, b) => b.utility! - a.utility!).slice(0, half)
    const chosen = new Set(best)
    const near = options.near
    let rest = observations.filter((o) => !chosen.has(o))
    if (near !== undefined) {
      const d = new Map(rest.map((o) => [o, distance(o.x, near)]))
      rest.sort((a, b) => d.get(a)! - d.get(b)!)
    } else rest = rest.reverse()
    kept = [...best, ...rest.slice(0, options.maxObservations - best.length)]
  }
  const worst = Math.min(...kept.flatMap((o) => (o.utility === undefined ? [] : [o.utility])))
  const raw = kept.map((o) => o.utility ?? worst)
  const mean = raw.reduce((a, b) => a + b, 0) / raw.length
  const sd = Math.sqrt(raw.reduce((a, b) => a + (b - mean) * (b - mean), 0) / raw.length)
  if (!(sd > 0)) return undefined
  const y = raw.map((v) => (v - mean) / sd)
  const n = kept.length
  const dim = Math.max(1, kept[0]!.x.length)

  let chosen: { l: Float64Array; alpha: Float64Array; ell: number; ellAdd: number; lml: number; hyper: Hyper } | undefined
  const mix = MIX
  for (const scale of options.hyper !== undefined ? [options.hyper.scale] : lengthScales) {
    const ell = scale * Math.sqrt(dim)
    const ellAdd = scale * 2
    const base = new Float64Array(n * n)
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) base[i * n + j] = base[j * n + i] = kernel(kept[i]!.x, kept[j]!.x, ell, ellAdd, mix)
    for (const noise of options.hyper !== undefined ? [options.hyper.noise] : noises) {
      const k = new Float64Array(n * n)
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) k[i * n + j] = i === j ? 1 + noise : base[i * n + j]!
      }
      const l = cholesky(k, n)
      if (l === undefined) continue
      const alpha = backward(l, n, forward(l, n, y))
      let logDet = 0
      for (let i = 0; i < n; i++) logDet += Math.log(l[i * n + i]!)
      const lml = -0.5 * y.reduce((acc, v, i) => acc + v * alpha[i]!, 0) - logDet
      if (chosen === undefined || lml > chosen.lml) chosen = { l, alpha, ell, ellAdd, lml, hyper: { scale, noise } }
    }
  }
  if (chosen === undefined) return undefined
  const { l, alpha, ell, ellAdd, hyper } = chosen
  const best = Math.max(...y)
  const predict = (x: ReadonlyArray<number>) => {
    const ks = kept.map((o) => kernel(o.x, x, ell, ellAdd, mix))
    const m = ks.reduce((acc, v, i) => acc + v * alpha[i]!, 0)
    const v = forward(l, n, ks)
    const variance = Math.max(1e-12, 1 - v.reduce((acc, z) => acc + z * z, 0))
    return { mean: m, sd: Math.sqrt(variance) }
  }
  return {
    hyper,
    predict,
    expectedImprovement: (x) => {
      const { mean: m, sd: s } = predict(x)
      const z = (m - best) / s
      return (m - best) * normCdf(z) + s * normPdf(z)
    }
  }
}
