/**
 * Greedy search in the style of AIDE: draft a few first-level strategies, then keep improving
 * the best node; now and then try to fix a failed node instead.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Random } from "effect"
import { ExperimentNode, SearchPolicy, Task } from "@trex/core"
import { argmax } from "./internal/values.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** First-level strategies to try before improving (default 3). */
  readonly drafts?: number
  /** Probability of expanding a failed node (default 0.1). */
  readonly debugProbability?: number
}

/**
 * @example
 * ```ts
 * import { Greedy } from "@trex/mcts"
 * const policy = Greedy.make({ drafts: 2 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => ({
  name: "greedy",
  select: (tree, ctx) =>
    Effect.gen(function*() {
      const drafts = options.drafts ?? 3
      if (tree.root.children.length < drafts && SearchPolicy.isExpandable(tree, "root", ctx)) {
        return SearchPolicy.expand("root")
      }
      const frontier = tree.frontier().filter((n) => SearchPolicy.isExpandable(tree, n.id, ctx))
      const failed = frontier.filter((n) => n.state._tag === "Failed")
      if (failed.length > 0 && (yield* Random.next) < (options.debugProbability ?? 0.1)) {
        return SearchPolicy.expand(failed[yield* Random.nextIntBetween(0, failed.length - 1)]!.id)
      }
      const scored = frontier.filter((n) => ExperimentNode.score(n) !== undefined)
      const best = yield* argmax(scored, (n) => Task.utility(tree.task, ExperimentNode.score(n)!))
      if (best !== undefined) return SearchPolicy.expand(best.id)
      if (SearchPolicy.isExpandable(tree, "root", ctx)) return SearchPolicy.expand("root")
      if (frontier.length > 0) return SearchPolicy.expand(frontier[0]!.id)
      return ctx.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to expand")
    })
})

/** @since 0.1.0 @category layers */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy> =>
  Layer.succeed(SearchPolicy.SearchPolicy, make(options))
