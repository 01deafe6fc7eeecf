/**
 * A mixture's shares as the fingerprint keeps them: each weight's share of the sum of the weights, in billionths,
 * rounded to the nearest (a half up), computed as if in exact arithmetic from the numbers the weights are. So the
 * order the weights are written in never changes a share: summed in floating point, `[0.86, 0.95, 0.917, 0.345]`
 * and the same weights reversed gave 112304687 and 112304688 billionths for 0.345 (their sums differ in the last
 * bit, and the share is a half billionth from both), so one mixture had two fingerprints and ran twice. The
 * recipe of `recipes/hf-trl` reads the shares the same way (`fingerprint_shares`, with Python's exact fractions).
 *
 * @internal
 */

/** The nearest integer to each `weight / total * 1e9`, a half up; `undefined` when the weights do not sum to a positive finite number. */
export const billionths = (weights: ReadonlyArray<number>): ReadonlyArray<number> | undefined => {
  const total = sum(weights)
  if (total === undefined) return undefined
  let exact: Exact | undefined
  return weights.map((w) => near(weights, total, w) ?? Number((exact ??= sumExactly(weights)).round(w)))
}

/** The share of `weights[index]` in billionths, as {@link billionths} gives it, without the others' shares. */
export const billionthsOf = (weights: ReadonlyArray<number>, index: number): number | undefined => {
  const total = sum(weights)
  if (total === undefined) return undefined
  const w = weights[index]!
  return near(weights, total, w) ?? Number(sumExactly(weights).round(w))
}

/** The weights' floating-point sum, when it is positive and finite. */
const sum = (weights: ReadonlyArray<number>): number | undefined => {
  let total = 0
  for (const w of weights) total += w
  return total > 0 && Number.isFinite(total) ? total : undefined
}

/**
 * `weight / total * 1e9` rounded in floating point, when that rounds as exact arithmetic does: away from a half. The
 * sum of n weights errs by at most n - 1 units of its last place relative to itself, the division and product by
 * one each, so the result, under 1e9, by under (n + 1) 1.2e-7; a margin ten times that is taken. `undefined` within it.
 */
const near = (weights: ReadonlyArray<number>, total: number, weight: number): number | undefined => {
  const scaled = (weight / total) * 1e9
  const whole = Math.floor(scaled)
  if (Math.abs(scaled - whole - 0.5) <= (weights.length + 1) * 1.2e-6) return undefined
  return scaled - whole > 0.5 ? whole + 1 : whole
}

interface Exact {
  /** `round(weight / total * 1e9)`, a half up, in exact arithmetic. */
  readonly round: (weight: number) => bigint
}

/** A finite double as `mantissa * 2 ** exponent`, both exact. */
const decompose = (x: number): { readonly mantissa: bigint; readonly exponent: number } => {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, x)
  const high = view.getUint32(0)
  const low = view.getUint32(4)
  const biased = (high >>> 20) & 0x7ff
  const fraction = (BigInt(high & 0xfffff) << 32n) | BigInt(low)
  const magnitude = biased === 0 ? fraction : fraction | (1n << 52n)
  return { mantissa: high >>> 31 === 1 ? -magnitude : magnitude, exponent: (biased === 0 ? 1 : biased) - 1075 }
}

/** The weights' sum in exact arithmetic, as an integer multiple of the smallest power of two among them. */
const sumExactly = (weights: ReadonlyArray<number>): Exact => {
  const parts = weights.map(decompose)
  let low = 0
  for (const p of parts) if (p.mantissa !== 0n) low = Math.min(low, p.exponent)
  const scale = (p: { readonly mantissa: bigint; readonly exponent: number }) => p.mantissa << BigInt(p.exponent - low)
  let total = 0n
  for (const p of parts) total += scale(p)
  return {
    // floor((2 w 1e9 + total) / (2 total)): the nearest integer to w 1e9 / total, a half up (w and total positive)
    round: (weight) => (2n * scale(decompose(weight)) * 1_000_000_000n + total) / (2n * total)
  }
}
