/**
 * UCT: Monte-Carlo tree search with upper confidence bounds, as in TREX. From the root, each
 * step either descends to the child with the best `value + c * sqrt(ln N / n)` or — when
 * progressive widening allows another child — expands the node itself, valued by its own score.
 * Values are min-max normalised; backup is max (default) or mean; pending trials count as losses
 * (virtual loss); the exploration constant may decay as the budget is spent.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { type Errors, ExperimentNode, type ExperimentTree, OptionSpec, SearchPolicy, Task } from "@trex/core"
import { Argmax, normalise, value } from "./internal/values.ts"
import { spec } from "./internal/uctOptions.ts"
import * as ProgressiveWidening from "./ProgressiveWidening.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Exploration constant for values in [0, 1], at least 0 (default 0.1, tuned on the recorded tables in bench/; 0: greedy on the best node). */
  readonly c?: number
  /**
   * Linear decay of `c` over the budget: `c * max(0, 1 - decay * budgetUsed)`, at least 0; 0 (default) keeps it
   * fixed, 1 brings it to 0 as the budget runs out, 2 halfway.
   */
  readonly decay?: number
  /** How a subtree is valued: its best result (`"max"`, default) or its mean (`"mean"`). */
  readonly backup?: "mean" | "max"
  /** First-level strategies before the root competes with its children, a whole number of at least 1 (default 4). */
  readonly drafts?: number
  /** How many children a node may have for its visits (default {@link ProgressiveWidening.defaults}: `{ k: 2, alpha: 0.5 }`). */
  readonly widening?: ProgressiveWidening.Options
  /** Count pending trials as losses while they run (default true), so parallel workers spread out. */
  readonly virtualLoss?: boolean
  /**
   * Exploration bonus from a prior (PUCT): `c * prior * sqrt(N) / (1 + n)` replaces the UCB term
   * (default false). Used by {@link Puct}.
   */
  readonly usePriors?: boolean
}

const uctSpec = spec("the exploration constant, for values in [0, 1]; 0 is greedy on the best node")

type Child = ExperimentTree.NodeView

/**
 * Build a UCT policy. Its options are checked first: a bad one (a negative or non-finite `c`,
 * `drafts: 2.5`, `backup: "avg"`, a string where a number goes, a misspelt key) throws an
 * `InvalidInput` that names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { Uct } from "@trex/mcts"
 * const policy = Uct.make({ c: 0.7, backup: "max", decay: 0.5 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): SearchPolicy.SearchPolicyShape => {
  OptionSpec.orThrow("Uct.make", uctSpec, options)
  const c0 = options.c ?? 0.1
  const backup = options.backup ?? "max"
  const widening = options.widening ?? ProgressiveWidening.defaults
  const virtualLoss = options.virtualLoss ?? true
  const usePriors = options.usePriors ?? false
  const drafts = options.drafts ?? 4
  const decay = options.decay ?? 0

  /**
   * Worth descending into: something in the subtree may still be expanded (the tree counts open
   * nodes per subtree). A context that exhausts more than the tree knows is handled by backtracking.
   */
  const reachable = (child: Child): boolean => child.stats.open > 0

  /** A node's own normalised value: its score, or 0 for a failure (the root has none). */
  const own = (tree: ExperimentTree.TreeView, id: string): number => {
    const node = id === "root" ? undefined : tree.get(id)
    const score = node === undefined ? undefined : ExperimentNode.score(node)
    return score === undefined ? 0 : normalise(tree, Task.utility(tree.task, score))
  }

  return {
    name: usePriors ? "puct" : "uct",
    select: (tree, ctx) =>
      Effect.gen(function*() {
        const c = c0 * Math.max(0, 1 - decay * ctx.budgetUsed)
        // Subtrees found to hold nothing expandable during this selection; the descent restarts
        // without them (backtracking), instead of scanning the whole tree.
        const dead = new Set<string>()
        descent: for (let restart = 0; restart < 256; restart++) {
          let id = "root"
          let stats = tree.root.stats
          let childIds = tree.root.children
          let view: Child | undefined = undefined
          for (;;) {
            const expandable = view === undefined ? SearchPolicy.isExpandable(tree, id, ctx) : SearchPolicy.isExpandableNode(view, ctx)
            const widen = expandable && childIds.length < ProgressiveWidening.allowed(stats.visits, widening)
            if (id === "root" && widen && childIds.length < drafts) return SearchPolicy.expand(id)
            const all = tree.children(id)
            let priorSum = 0
            let reachableCount = 0
            for (let i = 0; i < all.length; i++) {
              const ch = all[i]!
              if (!reachable(ch) || dead.has(ch.id)) continue
              reachableCount++
              priorSum += ch.prior ?? 1
            }
            if (reachableCount === 0) {
              if (expandable) return SearchPolicy.expand(id)
              if (ctx.inFlight > 0) return SearchPolicy.wait
              if (id === "root") return SearchPolicy.stop("every node is exhausted")
              dead.add(id)
              continue descent
            }
            const total = Math.max(1, stats.visits + (virtualLoss ? stats.pending : 0))
            const logTotal = Math.log(total + 1)
            const explore = (n: number, prior: number) =>
              usePriors ? c * (prior / priorSum) * Math.sqrt(total) / (1 + n) : c * Math.sqrt(logTotal / Math.max(n, 1e-9))
            // The argmax over the reachable children and, when widening is allowed, the node itself
            // (`undefined`), in that order; exact ties are broken at random.
            const choice = new Argmax<Child | undefined>()
            for (let i = 0; i < all.length; i++) {
              const ch = all[i]!
              if (!reachable(ch) || dead.has(ch.id)) continue
              const n = ch.stats.visits + (virtualLoss ? ch.stats.pending : 0)
              choice.offer(ch, n === 0 && !usePriors ? Infinity : value(tree, ch.stats, backup, virtualLoss) + explore(n, ch.prior ?? 1))
            }
            if (widen) choice.offer(undefined, own(tree, id) + explore(childIds.length + 1, 1))
            // without a tie, no effect runs
            const pick = choice.ties === undefined ? choice.best : yield* choice.pick()
            if (pick === undefined) return SearchPolicy.expand(id)
            view = pick
            id = pick.id
            stats = pick.stats
            childIds = pick.children
          }
        }
        // Many dead subtrees at once (rare): fall back to any expandable node.
        const any = tree.frontier().find((nd) => SearchPolicy.isExpandableNode(nd, ctx))
        return any !== undefined ? SearchPolicy.expand(any.id) : SearchPolicy.stop("every node is exhausted")
      })
  }
}

/**
 * UCT as the `SearchPolicy` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput> =>
  Layer.effect(SearchPolicy.SearchPolicy, OptionSpec.checked("Uct.make", uctSpec, options, () => make(options)))
