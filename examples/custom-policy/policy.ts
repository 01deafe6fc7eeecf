/**
 * A search policy in a few lines: epsilon-greedy on the best node. With probability `epsilon`
 * start a fresh branch from the root; otherwise improve the best node found so far.
 */
import { Effect, Random } from "effect"
import { SearchPolicy } from "@trex/core"

export const epsilonGreedy = (epsilon = 0.2): SearchPolicy.SearchPolicyShape => ({
  name: `epsilon-greedy(${epsilon})`,
  select: (tree, context) =>
    Effect.gen(function*() {
      const best = tree.best()
      const explore = best === undefined || (yield* Random.next) < epsilon
      const target = explore ? "root" : best.id
      if (SearchPolicy.isExpandable(tree, target, context)) return SearchPolicy.expand(target)
      // The chosen node is exhausted: fall back to any node that can still grow.
      const other = tree.frontier().find((n) => SearchPolicy.isExpandable(tree, n.id, context))
      if (other !== undefined) return SearchPolicy.expand(other.id)
      if (SearchPolicy.isExpandable(tree, "root", context)) return SearchPolicy.expand("root")
      return context.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to expand")
    })
})
