/**
 * The `Scheduler` contract: whether a running trial should go on, from its intermediate
 * metrics (early stopping: successive halving, ASHA, median stopping). Separate from the
 * search policy, as Ray Tune separates trial schedulers from searchers. Off by default.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import type { TreeView } from "./ExperimentTree.ts"

/** @since 0.1.0 @category models */
export type Decision = "continue" | "prune"

/** The members of a scheduler. @since 0.1.0 @category models */
export interface SchedulerShape {
  readonly name: string
  /** Called after a running trial reports metrics; `tree.get(nodeId).curve` holds them all. */
  readonly decide: (tree: TreeView, nodeId: string) => Decision
}

/**
 * @example
 * ```ts
 * import { Scheduler } from "@trex/core"
 * const never: Scheduler.SchedulerShape = { name: "none", decide: () => "continue" }
 * ```
 * @since 0.1.0 @category services
 */
export class Scheduler extends Context.Service<Scheduler, SchedulerShape>()("@trex/core/Scheduler") {}

/** A scheduler that never stops a trial (the default). @since 0.1.0 @category constructors */
export const none: SchedulerShape = { name: "none", decide: () => "continue" }
