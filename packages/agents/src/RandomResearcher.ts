/**
 * Random search as a researcher: every proposal is a uniform draw over the task's declared
 * search space (applied to its default strategy), never a fingerprint already tried. It ignores
 * the parent, so under any search policy it is plain random search: the floor every other
 * proposer must clear. Randomness comes from Effect's `Random`, so a seeded run repeats.
 *
 * @since 0.1.0
 */
import { Researcher } from "@trex/core"
import { Effect, Layer } from "effect"
import { analysis, freshness, spaceOf, uniform } from "./internal/tpeSpace.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Draws per proposal before a large space counts as exhausted (default 64). */
  readonly attempts?: number
}

/**
 * @example
 * ```ts
 * import { Effect, Random } from "effect"
 * import { RandomResearcher } from "@trex/agents"
 * const researcher = RandomResearcher.make()
 * // seeded: researcher.propose(context, 4).pipe(Random.withSeed(7))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): Researcher.ResearcherShape => ({
  name: "random",
  analyze: (task) => Effect.map(spaceOf(task, "analyze"), (s) => analysis(task, s, "Random search")),
  propose: (context, n) =>
    Effect.flatMap(spaceOf(context.task, "propose"), (s) =>
      uniform(s, n, freshness(context.tried), "Random search: a uniform draw from the search space.", options.attempts)).pipe(
        Effect.map((strategies) => strategies.map((strategy) => ({ strategy })))
      ),
  distill: () => Effect.succeed([])
})

/** The researcher as the `Researcher` service. @since 0.1.0 @category layers */
export const layer = (options: Options = {}): Layer.Layer<Researcher.Researcher> =>
  Layer.succeed(Researcher.Researcher, make(options))
