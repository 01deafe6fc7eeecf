/**
 * @trex/core — the domain model, the experiment tree, the journal, budgets and the contracts
 * (`SearchPolicy`, `Scheduler`, `Researcher`, `ExecutorAgent`, `Backend`) that the other
 * TREX packages implement.
 *
 * @since 0.1.0
 */
export * as Backend from "./Backend.ts"
export * as Budget from "./Budget.ts"
export * as Cost from "./Cost.ts"
export * as CostMeter from "./CostMeter.ts"
export * as Errors from "./Errors.ts"
export * as ExecutorAgent from "./ExecutorAgent.ts"
export * as ExperimentNode from "./ExperimentNode.ts"
export * as ExperimentTree from "./ExperimentTree.ts"
export * as Fingerprint from "./Fingerprint.ts"
export * as Insight from "./Insight.ts"
export * as JobProtocol from "./JobProtocol.ts"
export * as Journal from "./Journal.ts"
export * as JournalEvent from "./JournalEvent.ts"
export * as OptionSpec from "./OptionSpec.ts"
export * as Researcher from "./Researcher.ts"
export * as Result from "./Result.ts"
export * as Scheduler from "./Scheduler.ts"
export * as SearchPolicy from "./SearchPolicy.ts"
export * as Secrets from "./Secrets.ts"
export * as SearchSpace from "./SearchSpace.ts"
export * as Strategy from "./Strategy.ts"
export * as Task from "./Task.ts"
export * as TaskFile from "./TaskFile.ts"
