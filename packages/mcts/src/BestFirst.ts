/**
 * Best-first search: expand the best-scoring node that still has room for children
 * (at most `maxChildren` each), so good nodes are refined a few times, then the next best.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { SearchPolicy, Task } from "@trex/core"
import { argmax } from "./internal/values.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Children per node before it is set aside (default 3). */
  readonly maxChildren?: number
}

/**
 * @example
 * ```ts
 * import { BestFirst } from "@trex/mcts"
 * const policy = BestFirst.make({ maxChildren: 2 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => ({
  name: "best-first",
  select: (tree, ctx) =>
    Effect.gen(function*() {
      const max = options.maxChildren ?? 3
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
})

/** @since 0.1.0 @category layers */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy> =>
  Layer.succeed(SearchPolicy.SearchPolicy, make(options))
