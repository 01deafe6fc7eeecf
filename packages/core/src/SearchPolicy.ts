/**
 * The `SearchPolicy` contract: which node to expand next. Pure — a read-only tree and a
 * context in, a selection out — with randomness from Effect's `Random`, so runs are seeded.
 * Implementations (UCT, PUCT, Greedy, BestFirst, Random) live in `@trex/mcts`.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { NodeView, TreeView } from "./ExperimentTree.ts"

/** What the loop knows besides the tree. @since 0.1.0 @category models */
export interface SelectionContext {
  /** Fraction of the tightest budget limit used, in [0, 1]. */
  readonly budgetUsed: number
  /** Trials admitted or running now. */
  readonly inFlight: number
  readonly concurrency: number
  /** Trials finished so far. */
  readonly finished: number
  /** Whether the researcher could not propose anything new under this node (do not expand it again). */
  readonly exhausted: (nodeId: string) => boolean
}

/**
 * Whether a node may be expanded: the root, or a finished node that succeeded or failed
 * (failures are worth a fix, as AIDE debugs buggy nodes); never a cancelled or running one.
 * @since 0.1.0 @category predicates
 */
export const isExpandable = (tree: TreeView, nodeId: string, context: SelectionContext): boolean =>
  nodeId === "root" ? !context.exhausted(nodeId) : isExpandableNode(tree.get(nodeId), context)

/** {@link isExpandable} for a node already at hand. @since 0.1.0 @category predicates */
export const isExpandableNode = (node: NodeView | undefined, context: SelectionContext): boolean => {
  const tag = node?.state._tag
  return (tag === "Succeeded" || tag === "Failed" || tag === "Pruned") && !context.exhausted(node!.id)
}

/**
 * The policy's answer: expand a node (the root or a finished node) with one new child, wait
 * for running trials, or stop the search.
 * @since 0.1.0 @category models
 */
export type Selection =
  | { readonly _tag: "Expand"; readonly nodeId: string }
  | { readonly _tag: "Wait" }
  | { readonly _tag: "Stop"; readonly reason: string }

/** @since 0.1.0 @category constructors */
export const expand = (nodeId: string): Selection => ({ _tag: "Expand", nodeId })
/** @since 0.1.0 @category constructors */
export const wait: Selection = { _tag: "Wait" }
/** @since 0.1.0 @category constructors */
export const stop = (reason: string): Selection => ({ _tag: "Stop", reason })

/** The members of a policy. @since 0.1.0 @category models */
export interface SearchPolicyShape {
  readonly name: string
  readonly select: (tree: TreeView, context: SelectionContext) => Effect.Effect<Selection>
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SearchPolicy } from "@trex/core"
 * // Always improve the best node so far (the root until something succeeds).
 * const hillClimb: SearchPolicy.SearchPolicyShape = {
 *   name: "hill-climb",
 *   select: (tree) => Effect.succeed(SearchPolicy.expand(tree.best()?.id ?? "root"))
 * }
 * ```
 * @since 0.1.0 @category services
 */
export class SearchPolicy extends Context.Service<SearchPolicy, SearchPolicyShape>()("@trex/core/SearchPolicy") {}
