/**
 * The heuristic researcher's surrogate: a Gaussian process over the finished results of the tree,
 * used to rank candidate children by expected improvement before proposing them.
 *
 * Inputs are positions in the declared search space (ordinal and log parameters: index times one
 * step length for every parameter, so the one with the most values spans [0, 1]; categorical
 * parameters: one-hot, scaled so that two different values are 1 apart).
 * Outputs are utilities (larger is better), a failed trial counting as the worst success, replaced
 * by their normal scores (rank-based, so one diverged run does not squash the rest) and
 * standardised to mean 0 and variance 1. The kernel is an even mix of a Matérn 5/2 kernel on the distance
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

/** Grid steps of one parameter counted in full, at most: a finer grid (a near-continuous one) spans what this many steps span. */
const MAX_STEPS = 8

/** The length of one grid step of each ordinal or log parameter of a space (see {@link features}); computed once per space. */
const stepCache = new WeakMap<SearchSpace.SearchSpace, ReadonlyArray<number>>()
const stepLengths = (space: SearchSpace.SearchSpace): ReadonlyArray<number> => {
  let out = stepCache.get(space)
  if (out === undefined) {
    let most = 1
    for (const p of space.parameters) if (p.kind !== "categorical" && p.values.length > 1) most = Math.max(most, Math.min(MAX_STEPS, p.values.length - 1))
    out = space.parameters.map((p) => Math.min(1, MAX_STEPS / Math.max(1, p.values.length - 1)) / most)
    stepCache.set(space, out)
  }
  return out
}

/**
 * The feature vector of a strategy in a space: one number per parameter with more than one value.
 * An ordinal or log parameter is its value's index times a step length that is the same for every
 * parameter, so the parameter with the most values spans [0, 1] and a switch of a two-valued one
 * is one step, not the whole range (a parameter with more than 8 steps spans what 8 span). A
 * categorical one is `-(index + 1)`: two different values are 1 apart.
 */
export const features = (space: SearchSpace.SearchSpace, strategy: Strategy.Strategy): Array<number> => {
  const out: Array<number> = []
  const steps = stepLengths(space)
  for (let k = 0; k < space.parameters.length; k++) {
    const p = space.parameters[k]!
    if (p.values.length <= 1) continue
    const i = SearchSpace.indexOf(p, strategy)
    out.push(p.kind === "categorical" ? -(i + 1) : i * steps[k]!)
  }
  return out
}

const gap = (a: number, b: number) => (a < 0 || b < 0 ? (a === b ? 0 : 1) : Math.abs(a - b))
/** Weight of the additive part of the kernel (tuned on the recorded tables in bench/). */
const MIX = 0.5

const SQRT5 = Math.sqrt(5)
const matern52 = (r: number, ell: number): number => {
  const s = (SQRT5 * r) / ell
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

/** The kernel: a mix of Matérn 5/2 on the whole distance and an additive one, per parameter (one pass). */
const kernel = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, ell: number, ellAdd: number, mix: number): number => {
  let squares = 0
  let add = 0
  for (let i = 0; i < a.length; i++) {
    const d = gap(a[i]!, b[i]!)
    squares += d * d
    if (mix > 0) add += matern52(d, ellAdd)
  }
  const full = mix < 1 ? matern52(Math.sqrt(squares), ell) : 1
  if (mix <= 0) return full
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

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
const probit = (p: number): number => {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239] as const
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572] as const
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783] as const
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416] as const
  const tail = (q: number) => (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)))
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)))
  const q = p - 0.5
  const r = q * q
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
}

/**
 * Normal scores (a Gaussian copula of the outputs): `probit(rank / (n + 1))`, with ranks from 1
 * and tied values sharing their mean rank.
 */
export const normalScores = (values: ReadonlyArray<number>): Array<number> => {
  const n = values.length
  const order = values.map((_, i) => i).sort((i, j) => values[i]! - values[j]!)
  const out = new Array<number>(n)
  for (let start = 0; start < n;) {
    let end = start
    while (end + 1 < n && values[order[end + 1]!] === values[order[start]!]) end++
    const rank = (start + end) / 2 + 1
    for (let k = start; k <= end; k++) out[order[k]!] = probit(rank / (n + 1))
    start = end + 1
  }
  return out
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
  if (raw.every((v) => v === raw[0])) return undefined
  // Normal scores instead of the values: a few diverged runs far below the rest would otherwise
  // flatten the differences that matter, among the good ones.
  const scores = normalScores(raw)
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length
  const sd = Math.sqrt(scores.reduce((a, b) => a + (b - mean) * (b - mean), 0) / scores.length)
  const y = scores.map((v) => (v - mean) / sd)
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
    const ks = new Float64Array(n)
    let m = 0
    for (let i = 0; i < n; i++) {
      ks[i] = kernel(kept[i]!.x, x, ell, ellAdd, mix)
      m += ks[i]! * alpha[i]!
    }
    const v = forward(l, n, ks)
    let explained = 0
    for (let i = 0; i < n; i++) explained += v[i]! * v[i]!
    const variance = Math.max(1e-12, 1 - explained)
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
