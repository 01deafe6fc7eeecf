/**
 * The `Scheduler` contract: whether a running trial should go on, from its intermediate
 * metrics (early stopping: successive halving, ASHA, median stopping). Separate from the
 * search policy, as Ray Tune separates trial schedulers from searchers. Off by default.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type { TreeView } from "./ExperimentTree.ts"
import type { MetricPoint } from "./Result.ts"

/** @since 0.1.0 @category models */
export type Decision = "continue" | "prune"

/** The members of a scheduler. @since 0.1.0 @category models */
export interface SchedulerShape {
  readonly name: string
  /**
   * Called after a running trial reports metrics: `tree.get(nodeId).curve` holds them all, and
   * `reported` the points of the report just folded in (so a scheduler can judge a trial once, when
   * a report takes it past a rung, rather than again at each later report). A `prune` is journaled
   * at once and stands: the trial's job is cancelled, and a resumed run does not run it again. A
   * `decide` that throws is a bug in the scheduler: no trial is pruned from then on, no new trial
   * starts, and once those in flight have finished the run fails with a `PolicyError` naming it.
   */
  readonly decide: (tree: TreeView, nodeId: string, reported?: ReadonlyArray<MetricPoint>) => Decision
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
