/**
 * Random search as a researcher: every proposal is a uniform draw over the task's declared
 * search space (applied to its default strategy), never a fingerprint already tried. It ignores
 * the parent, so under any search policy it is plain random search: the floor every other
 * proposer must clear. Randomness comes from Effect's `Random`, so a seeded run repeats.
 *
 * @since 0.1.0
 */
import { type Errors, OptionSpec, Researcher } from "@trex/core"
import { Effect, Layer } from "effect"
import { analysis, freshness, spaceOf, uniform } from "./internal/tpeSpace.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /**
   * Draws per strategy asked for before a space too large to enumerate (over 4,096 points, no pool)
   * counts as exhausted, a whole number of at least 1 (default 64). Smaller spaces and pools are shuffled whole.
   */
  readonly attempts?: number
}

/** What each option takes. */
const spec: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  attempts: OptionSpec.integer(1, "draws per proposal before a large space counts as exhausted")
}

/**
 * Build the researcher. Its options are checked first: a bad one throws an `InvalidInput` that
 * names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { Effect, Random } from "effect"
 * import { RandomResearcher } from "@trex/agents"
 * const researcher = RandomResearcher.make()
 * // seeded: researcher.propose(context, 4).pipe(Random.withSeed(7))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): Researcher.ResearcherShape => {
  OptionSpec.orThrow("RandomResearcher.make", spec, options)
  const attempts = options.attempts ?? 64
  return {
    name: "random",
    analyze: (task) => Effect.map(spaceOf(task, "analyze"), (s) => analysis(task, s, "Random search")),
    propose: (context, n) =>
      Effect.flatMap(spaceOf(context.task, "propose"), (s) =>
        uniform(s, n, freshness(context.tried), "Random search: a uniform draw from the search space.", attempts)).pipe(
          Effect.map((strategies) => strategies.map((strategy) => ({ strategy })))
        ),
    distill: () => Effect.succeed([])
  }
}

/**
 * The researcher as the `Researcher` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Researcher.Researcher, Errors.InvalidInput> =>
  Layer.effect(Researcher.Researcher, OptionSpec.checked("RandomResearcher.make", spec, options, () => make(options)))
