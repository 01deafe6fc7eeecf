/**
 * PUCT: UCT whose exploration term is weighted by the researcher's prior for each child
 * (`c * P * sqrt(N) / (1 + n)`, as in AlphaZero). Children without a prior share evenly.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import { SearchPolicy } from "@trex/core"
import * as Uct from "./Uct.ts"

/** @since 0.1.0 @category models */
export type Options = Omit<Uct.Options, "usePriors">

/**
 * @example
 * ```ts
 * import { Puct } from "@trex/mcts"
 * const policy = Puct.make({ c: 1.5 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape =>
  Uct.make({ c: 1.5, ...options, usePriors: true })

/** @since 0.1.0 @category layers */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy> =>
  Layer.succeed(SearchPolicy.SearchPolicy, make(options))
