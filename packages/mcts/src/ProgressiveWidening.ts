/**
 * Progressive widening: how many children a node may have grows with its visits,
 * `ceil(k * (visits + 1) ^ alpha)`, so a search deepens before it fans out.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category models */
export interface Options {
  /** Children allowed at the first visit (rounded up), more than 0. */
  readonly k: number
  /** Growth exponent from 0 to 1: 0 keeps `k` children, 0.5 allows about `k * sqrt(visits)`, 1 one more per visit. */
  readonly alpha: number
}

/** The default: 2 children at first, about 2 * sqrt(visits) later. @since 0.1.0 @category constants */
export const defaults: Options = { k: 2, alpha: 0.5 }

/**
 * How many children a node with `visits` may have.
 *
 * @example
 * ```ts
 * import { ProgressiveWidening } from "@trex/mcts"
 * ProgressiveWidening.allowed(8, { k: 1, alpha: 0.5 }) // 3
 * ```
 * @since 0.1.0 @category functions
 */
export const allowed = (visits: number, options: Options = defaults): number =>
  Math.max(1, Math.ceil(options.k * Math.pow(visits + 1, options.alpha)))
