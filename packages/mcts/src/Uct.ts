/**
 * UCT: Monte-Carlo tree search with upper confidence bounds, as in TREX. From the root, a node
 * is expanded while progressive widening allows another child; otherwise the search descends
 * to the child with the best `value + c * sqrt(ln N / n)`, with min-max normalised values,
 * mean or max backup, virtual loss on pending trials, and an exploration constant that may
 * decay as the budget is spent.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { type ExperimentTree, SearchPolicy } from "@trex/core"
import { argmax, value } from "./internal/values.ts"
import * as ProgressiveWidening from "./ProgressiveWidening.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Exploration constant (default 1 / sqrt 2, right for values in [0, 1]). */
  readonly c?: number
  /** Linear decay of `c` over the budget: `c * (1 - decay * budgetUsed)`; 0 (default) keeps it fixed. */
  readonly decay?: number
  readonly backup?: "mean" | "max"
  readonly widening?: ProgressiveWidening.Options
  /** Count pending trials as losses while they run (default true), so parallel workers spread out. */
  readonly virtualLoss?: boolean
  /**
   * Exploration bonus from a prior (PUCT): `c * prior * sqrt(N) / (1 + n)` replaces the UCB term.
   * Used by {@link Puct}.
   */
  readonly usePriors?: boolean
}

type Child = ExperimentTree.NodeView

/**
 * Build a UCT policy.
 *
 * @example
 * ```ts
 * import { Uct } from "@trex/mcts"
 * const policy = Uct.make({ c: 0.7, backup: "max", decay: 0.5 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => {
  const c0 = options.c ?? Math.SQRT1_2
  const backup = options.backup ?? "mean"
  const widening = options.widening ?? ProgressiveWidening.defaults
  const virtualLoss = options.virtualLoss ?? true
  const usePriors = options.usePriors ?? false

  /** Worth descending into: expandable itself, or with finished descendants that may be. O(1). */
  const reachable = (tree: ExperimentTree.TreeView, ctx: SearchPolicy.SelectionContext, child: Child): boolean =>
    SearchPolicy.isExpandable(tree, child.id, ctx) || (child.children.length > 0 && child.stats.visits > 0)

  return {
    name: usePriors ? "puct" : "uct",
    select: (tree, ctx) =>
      Effect.gen(function*() {
        const c = c0 * Math.max(0, 1 - (options.decay ?? 0) * ctx.budgetUsed)
        let id = "root"
        let stats = tree.root.stats
        let childIds = tree.root.children
        for (;;) {
          const expandable = SearchPolicy.isExpandable(tree, id, ctx)
          const n = stats.visits + (virtualLoss ? stats.pending : 0)
          if (expandable && childIds.length < ProgressiveWidening.allowed(stats.visits, widening)) {
            return SearchPolicy.expand(id)
          }
          const children = childIds.map((cid) => tree.get(cid)!).filter((ch) => reachable(tree, ctx, ch))
          if (children.length === 0) {
            if (expandable) return SearchPolicy.expand(id)
            // A dead end (exhausted, or only pending below): rare, so a scan is fine.
            if (ctx.inFlight > 0) return SearchPolicy.wait
            const any = tree.frontier().find((nd) => SearchPolicy.isExpandable(tree, nd.id, ctx))
            return any !== undefined ? SearchPolicy.expand(any.id) : SearchPolicy.stop("every node is exhausted")
          }
          const total = Math.max(1, n)
          const priorSum = children.reduce((acc, ch) => acc + (ch.prior ?? 1), 0)
          const pick = yield* argmax(children, (ch) => {
            const nc = ch.stats.visits + (virtualLoss ? ch.stats.pending : 0)
            const q = value(tree, ch.stats, backup, virtualLoss)
            if (usePriors) return q + c * ((ch.prior ?? 1) / priorSum) * Math.sqrt(total) / (1 + nc)
            return nc === 0 ? Infinity : q + c * Math.sqrt(Math.log(total + 1) / nc)
          })
          id = pick!.id
          stats = pick!.stats
          childIds = pick!.children
        }
      })
  }
}

/** UCT as the `SearchPolicy` service. @since 0.1.0 @category layers */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy> =>
  Layer.succeed(SearchPolicy.SearchPolicy, make(options))
