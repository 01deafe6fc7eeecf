/**
 * Uniformly random expansion: any expandable node (the root included) with equal chance.
 * The baseline every other policy must beat.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Random } from "effect"
import { OptionSpec, SearchPolicy } from "@trex/core"

/**
 * Build the random policy. It takes no options (its draws are seeded by `Explorer.run`'s `seed`):
 * any given, from a caller or a config that cannot see the types, throws an `InvalidInput`
 * naming each, rather than being ignored.
 *
 * @example
 * ```ts
 * import { RandomPolicy } from "@trex/mcts"
 * const policy = RandomPolicy.make()
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Record<string, never> = {}): SearchPolicy.SearchPolicyShape => {
  OptionSpec.orThrow("RandomPolicy.make", {}, options)
  return {
    name: "random",
    select: (tree, ctx) =>
      Effect.gen(function*() {
        const ids = ["root", ...tree.frontier().map((n) => n.id)].filter((id) => SearchPolicy.isExpandable(tree, id, ctx))
        if (ids.length === 0) return ctx.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to expand")
        return SearchPolicy.expand(ids[yield* Random.nextIntBetween(0, ids.length - 1)]!)
      })
  }
}

/** @since 0.1.0 @category layers */
export const layer: Layer.Layer<SearchPolicy.SearchPolicy> = Layer.succeed(SearchPolicy.SearchPolicy, make())
