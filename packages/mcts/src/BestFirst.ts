/**
 * Best-first search: expand the best-scoring node that still has room for children
 * (at most `maxChildren` each), so good nodes are refined a few times, then the next best.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { type Errors, OptionSpec, SearchPolicy, Task } from "@trex/core"
import { argmax } from "./internal/values.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Children per node before it is set aside, a whole number of at least 1 (default 3). */
  readonly maxChildren?: number
}

const spec: OptionSpec.Spec = {
  maxChildren: OptionSpec.integer(1, "children per node before it is set aside")
}

/**
 * Build a best-first policy. Its options are checked first: a bad one throws an `InvalidInput`
 * that names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { BestFirst } from "@trex/mcts"
 * const policy = BestFirst.make({ maxChildren: 2 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => {
  OptionSpec.orThrow("BestFirst.make", spec, options)
  const max = options.maxChildren ?? 3
  return {
    name: "best-first",
    select: (tree, ctx) =>
      Effect.gen(function*() {
        const open = tree
          .frontier()
          .filter((n) => n.state._tag === "Succeeded" && n.children.length < max && SearchPolicy.isExpandable(tree, n.id, ctx))
        const best = yield* argmax(open, (n) =>
          n.state._tag === "Succeeded" && n.state.result.score !== undefined ? Task.utility(tree.task, n.state.result.score) : -Infinity
        )
        if (best !== undefined) return SearchPolicy.expand(best.id)
        if (SearchPolicy.isExpandable(tree, "root", ctx)) return SearchPolicy.expand("root")
        return ctx.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to expand")
      })
  }
}

/**
 * Best-first search as the `SearchPolicy` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput> =>
  Layer.effect(SearchPolicy.SearchPolicy, OptionSpec.checked("BestFirst.make", spec, options, () => make(options)))
