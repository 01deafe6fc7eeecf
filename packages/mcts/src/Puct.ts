/**
 * PUCT: UCT whose exploration term is weighted by the researcher's prior for each child
 * (`c * P * sqrt(N) / (1 + n)`, as in AlphaZero). Children without a prior share evenly.
 *
 * @since 0.1.0
 */
import { type Errors, OptionSpec, SearchPolicy } from "@trex/core"
import { Layer } from "effect"
import { spec } from "./internal/uctOptions.ts"
import * as Uct from "./Uct.ts"

/** UCT's options but `usePriors` (always on), with PUCT's own default `c`. @since 0.1.0 @category models */
export interface Options extends Omit<Uct.Options, "usePriors" | "c"> {
  /** Exploration constant, at least 0 (default 1.5: the prior divides the bonus among the children). */
  readonly c?: number
}

const puctSpec = spec("the exploration constant; 0 is greedy on the best node", false)

/**
 * Build a PUCT policy. Its options are checked first, as `Uct.make` checks them: a bad one throws
 * an `InvalidInput` that names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { Puct } from "@trex/mcts"
 * const policy = Puct.make({ c: 1.5 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => {
  OptionSpec.orThrow("Puct.make", puctSpec, options)
  // `c: undefined` counts as left out (a spread of it would have overridden the default with UCT's 0.1)
  return Uct.make({ ...options, c: options.c ?? 1.5, usePriors: true })
}

/**
 * PUCT as the `SearchPolicy` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput> =>
  Layer.effect(SearchPolicy.SearchPolicy, OptionSpec.checked("Puct.make", puctSpec, options, () => make(options)))
