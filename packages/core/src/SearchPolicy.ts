/**
 * The `SearchPolicy` contract: which node to expand next. Pure — a read-only tree and a
 * context in, a selection out — with randomness from Effect's `Random`, so runs are seeded.
 * Implementations (UCT, PUCT, Greedy, BestFirst, Random) live in `@trex/mcts`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
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
 * What is wrong with a policy's answer, or `undefined` when the loop can carry it out: an Expand
 * must name the root or a finished node that is not exhausted ({@link isExpandable}); anything
 * else must be {@link wait} or a {@link stop}. The explorer checks every selection with it (a
 * wrong one stops the run with a `PolicyError`), and so does the conformance suite.
 * @since 0.1.0 @category predicates
 */
export const check = (tree: TreeView, context: SelectionContext, selection: unknown): string | undefined => {
  const tag = typeof selection === "object" && selection !== null ? (selection as { _tag?: unknown })._tag : undefined
  if (tag === "Wait") return undefined
  if (tag === "Stop") return typeof (selection as { reason?: unknown }).reason === "string" ? undefined : "Stop needs a reason (a string): SearchPolicy.stop(reason)"
  if (tag !== "Expand") {
    return `${describe(selection)} is not a selection: answer SearchPolicy.expand(nodeId), SearchPolicy.wait or SearchPolicy.stop(reason)`
  }
  const nodeId = (selection as { nodeId?: unknown }).nodeId
  if (typeof nodeId !== "string") return `Expand needs a node id (a string): SearchPolicy.expand(nodeId)`
  if (isExpandable(tree, nodeId, context)) return undefined
  const node = nodeId === "root" ? undefined : tree.get(nodeId)
  const why = nodeId !== "root" && node === undefined ? "the tree has no such node"
    : context.exhausted(nodeId) ? "exhausted: the researcher had nothing new under it"
    : `${node!.state._tag.toLowerCase()}: only the root or a finished node may be expanded`
  return `chose ${nodeId}, which may not be expanded (${why}); check SearchPolicy.isExpandable(tree, id, context) before expanding, and wait or stop when nothing is`
}

const describe = (x: unknown): string => {
  if (x === undefined) return "undefined"
  try {
    const s = JSON.stringify(x)
    return s === undefined ? String(x) : s.length > 80 ? `${s.slice(0, 79)}…` : s
  } catch {
    return String(x)
  }
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
 * // Improve the best node so far (the root until something succeeds, or once the best is exhausted).
 * const hillClimb: SearchPolicy.SearchPolicyShape = {
 *   name: "hill-climb",
 *   select: (tree, context) => {
 *     const best = tree.best()
 *     if (best !== undefined && SearchPolicy.isExpandableNode(best, context)) return Effect.succeed(SearchPolicy.expand(best.id))
 *     if (SearchPolicy.isExpandable(tree, "root", context)) return Effect.succeed(SearchPolicy.expand("root"))
 *     return Effect.succeed(context.inFlight > 0 ? SearchPolicy.wait : SearchPolicy.stop("nothing left to improve"))
 *   }
 * }
 * ```
 * @since 0.1.0 @category services
 */
export class SearchPolicy extends Context.Service<SearchPolicy, SearchPolicyShape>()("@trex/core/SearchPolicy") {}
