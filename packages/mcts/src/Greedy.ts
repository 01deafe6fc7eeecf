/**
 * Greedy search in the style of AIDE: draft a few first-level strategies, then keep improving
 * the best node; now and then try to fix a failed node instead.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Random } from "effect"
import { type Errors, ExperimentNode, OptionSpec, SearchPolicy, Task } from "@trex/core"
import { argmax } from "./internal/values.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** First-level strategies to try before improving, a whole number of at least 1 (default 3). */
  readonly drafts?: number
  /** Probability of expanding a failed node, from 0 to 1 (default 0.1). */
  readonly debugProbability?: number
}

const spec: OptionSpec.Spec = {
  drafts: OptionSpec.integer(1, "first-level strategies to try before improving the best"),
  debugProbability: OptionSpec.probability("how often a failed node is expanded to fix it")
}

/**
 * Build a greedy policy. Its options are checked first: a bad one throws an `InvalidInput` that
 * names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { Greedy } from "@trex/mcts"
 * const policy = Greedy.make({ drafts: 2 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => {
  OptionSpec.orThrow("Greedy.make", spec, options)
  const drafts = options.drafts ?? 3
  const debugProbability = options.debugProbability ?? 0.1
  return {
    name: "greedy",
    select: (tree, ctx) =>
      Effect.gen(function*() {
        if (tree.root.children.length < drafts && SearchPolicy.isExpandable(tree, "root", ctx)) {
          return SearchPolicy.expand("root")
        }
        const frontier = tree.frontier().filter((n) => SearchPolicy.isExpandable(tree, n.id, ctx))
        const failed = frontier.filter((n) => n.state._tag === "Failed")
        if (failed.length > 0 && (yield* Random.next) < debugProbability) {
          return SearchPolicy.expand(failed[yield* Random.nextIntBetween(0, failed.length - 1)]!.id)
        }
        const scored = frontier.filter((n) => ExperimentNode.score(n) !== undefined)
        const best = yield* argmax(scored, (n) => Task.utility(tree.task, ExperimentNode.score(n)!))
        if (best !== undefined) return SearchPolicy.expand(best.id)
        if (SearchPolicy.isExpandable(tree, "root", ctx)) return SearchPolicy.expand("root")
        if (frontier.length > 0) return SearchPolicy.expand(frontier[0]!.id)
        return ctx.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to expand")
      })
  }
}

/**
 * Greedy search as the `SearchPolicy` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput> =>
  Layer.effect(SearchPolicy.SearchPolicy, OptionSpec.checked("Greedy.make", spec, options, () => make(options)))
