/**
 * The events of a run, as appended to its {@link Journal}. The tree, the budget and every
 * view of a run are folds over these events, so replaying a journal rebuilds the run.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Budget from "./Budget.ts"
import * as Cost from "./Cost.ts"
import * as ExperimentNode from "./ExperimentNode.ts"
import * as Insight from "./Insight.ts"
import * as C from "./internal/canonical.ts"
import { JsonRecord, listOf } from "./internal/schema.ts"
import * as Researcher from "./Researcher.ts"
import * as Result from "./Result.ts"
import * as Task from "./Task.ts"

/** The journal format version this code writes. @since 0.1.0 @category constants */
export const FORMAT_VERSION = 4

/** Final state of a node. @since 0.1.0 @category schemas */
export const Outcome = Schema.Literals(["Succeeded", "Failed", "Cancelled", "Pruned"])
/** @since 0.1.0 @category models */
export type Outcome = typeof Outcome.Type

/**
 * Every event. `at` is milliseconds since the epoch (from Effect's `Clock`, so tests control it).
 * @since 0.1.0 @category schemas
 */
export const JournalEvent = Schema.TaggedUnion({
  RunStarted: {
    runId: Schema.NonEmptyString,
    task: Task.Task,
    seed: Schema.Int,
    options: JsonRecord,
    at: Schema.Finite
  },
  /**
   * `budget`: the run's budget from here on, when the resume set one (`trex resume --max-trials`).
   * `settings`: settings of the run's (those `RunStarted.options` records) that replace the recorded
   * ones from here on, when the resume set some: `trex resume --model-timeout 600` on a run whose
   * recorded `modelTimeoutSeconds` this trex does not take records `{ modelTimeoutSeconds: 600 }`, so
   * a later resume starts from it. A trex that predates the key ignores it.
   */
  RunResumed: { at: Schema.Finite, budget: Schema.optionalKey(Budget.Budget), settings: Schema.optionalKey(JsonRecord) },
  /**
   * The researcher's analysis of the task, journaled once per run before its first proposal
   * (the placeholder when `analyze` failed), so a resumed run reuses it instead of asking again.
   */
  AnalysisCompleted: { analysis: Researcher.Analysis, at: Schema.Finite },
  NodeProposed: { node: ExperimentNode.NodeSpec, at: Schema.Finite },
  NodeAdmitted: { nodeId: Schema.String, estimate: Cost.Cost, at: Schema.Finite },
  JobSubmitted: { nodeId: Schema.String, job: ExperimentNode.JobRef, at: Schema.Finite },
  JobProgress: {
    nodeId: Schema.String,
    fraction: Schema.optionalKey(Schema.Finite),
    message: Schema.optionalKey(Schema.String),
    metrics: listOf(Result.MetricPoint),
    at: Schema.Finite
  },
  /**
   * A trial's job started waiting in its backend's queue (`Pending`, with the backend's reason),
   * its reason changed, it left the queue (`Running`, after a wait), or a draining run took it out
   * of the queue (`Withdrawn`: its job is cancelled, and a resumed run submits it afresh, first). A
   * job that never waits journals none. `Running` with a `reason`: its backend cannot be asked about
   * the job now (its engine, controller or host does not answer), the job taken to run on; the next
   * `JobState` (or the trial's end) ends that. `Pruning` (format 4): a scheduler stopped the trial, for
   * `reason`, and its job is being cancelled; the trial ends `Pruned`, and a resumed run does not
   * run it again (it cancels the job, if it still runs, and charges what it cost).
   */
  JobState: {
    nodeId: Schema.String,
    state: Schema.Literals(["Pending", "Running", "Withdrawn", "Pruning"]),
    reason: Schema.optionalKey(Schema.String),
    at: Schema.Finite
  },
  NodeFinished: {
    nodeId: Schema.String,
    outcome: Outcome,
    result: Schema.optionalKey(Result.Result),
    reason: Schema.optionalKey(Schema.String),
    at: Schema.Finite
  },
  /** The researcher had nothing new to propose under this node: policies stop expanding it. */
  NodeExhausted: { nodeId: Schema.String, at: Schema.Finite },
  InsightsDistilled: { insights: Schema.Array(Insight.Insight), at: Schema.Finite },
  BudgetCharged: {
    nodeId: Schema.optionalKey(Schema.String),
    cost: Cost.Cost,
    reason: Schema.String,
    at: Schema.Finite
  },
  RunFinished: { reason: Schema.String, bestNode: Schema.optionalKey(Schema.String), at: Schema.Finite }
})
/** @since 0.1.0 @category models */
export type JournalEvent = typeof JournalEvent.Type
/** @since 0.1.0 @category models */
export type JournalEventEncoded = typeof JournalEvent.Encoded
/** @since 0.1.0 @category models */
export type Tag = JournalEvent["_tag"]
/** An event of one kind. @since 0.1.0 @category models */
export type Of<T extends Tag> = Extract<JournalEvent, { readonly _tag: T }>

/**
 * How the reason of a `RunFinished` begins when the run's researcher kept failing (`the researcher failed: <its
 * error>`; `Explorer.RESEARCHER_FAILED` of `@trex/mcts`, here for the readers of a journal that load no explorer).
 * @since 0.1.0 @category constants
 */
export const RESEARCHER_FAILED = "the researcher failed"

/**
 * The reason of a `RunFinished` of a run stopped by request with trials in flight (`Explorer.STOPPED_BY_REQUEST` of
 * `@trex/mcts`, here for the readers of a journal that load no explorer).
 * @since 0.1.0 @category constants
 */
export const STOPPED_BY_REQUEST = "stopped by request"

/** A journal entry: the event and its sequence number (1-based, gap-free). @since 0.1.0 @category models */
export interface Entry {
  readonly seq: number
  readonly event: JournalEvent
}

/**
 * Canonical-form checks per tag (see `internal/canonical.ts`); `RunStarted` (once per run, with
 * the whole task) always takes the schema's path.
 */
const cases = JournalEvent.cases
const canonical: Partial<Record<Tag, C.Check>> = {
  // (one with a budget or settings, rare, takes the schema's path)
  RunResumed: C.struct("RunResumed", cases.RunResumed, { _tag: C.literal("RunResumed"), at: C.isFinite }, { budget: () => false, settings: () => false }),
  AnalysisCompleted: C.struct("AnalysisCompleted", cases.AnalysisCompleted, {
    _tag: C.literal("AnalysisCompleted"),
    analysis: C.analysis,
    at: C.isFinite
  }),
  NodeProposed: C.struct("NodeProposed", cases.NodeProposed, { _tag: C.literal("NodeProposed"), node: C.nodeSpec, at: C.isFinite }),
  NodeAdmitted: C.struct("NodeAdmitted", cases.NodeAdmitted, {
    _tag: C.literal("NodeAdmitted"),
    nodeId: C.isString,
    estimate: C.cost,
    at: C.isFinite
  }),
  JobSubmitted: C.struct("JobSubmitted", cases.JobSubmitted, { _tag: C.literal("JobSubmitted"), nodeId: C.isString, job: C.jobRef, at: C.isFinite }),
  JobProgress: C.struct(
    "JobProgress",
    cases.JobProgress,
    { _tag: C.literal("JobProgress"), nodeId: C.isString, metrics: C.arrayOf(C.metricPoint), at: C.isFinite },
    { fraction: C.isFinite, message: C.isString }
  ),
  JobState: C.struct(
    "JobState",
    cases.JobState,
    { _tag: C.literal("JobState"), nodeId: C.isString, state: C.oneOf(["Pending", "Running", "Withdrawn", "Pruning"]), at: C.isFinite },
    { reason: C.isString }
  ),
  NodeFinished: C.struct(
    "NodeFinished",
    cases.NodeFinished,
    { _tag: C.literal("NodeFinished"), nodeId: C.isString, outcome: C.oneOf(Outcome.literals), at: C.isFinite },
    { result: C.result, reason: C.isString }
  ),
  NodeExhausted: C.struct("NodeExhausted", cases.NodeExhausted, { _tag: C.literal("NodeExhausted"), nodeId: C.isString, at: C.isFinite }),
  InsightsDistilled: C.struct("InsightsDistilled", cases.InsightsDistilled, {
    _tag: C.literal("InsightsDistilled"),
    insights: C.arrayOf(C.insight),
    at: C.isFinite
  }),
  BudgetCharged: C.struct(
    "BudgetCharged",
    cases.BudgetCharged,
    { _tag: C.literal("BudgetCharged"), cost: C.cost, reason: C.isString, at: C.isFinite },
    { nodeId: C.isString }
  ),
  RunFinished: C.struct(
    "RunFinished",
    cases.RunFinished,
    { _tag: C.literal("RunFinished"), reason: C.isString, at: C.isFinite },
    { bestNode: C.isString }
  )
}
const isCanonical: C.Check = (u) => {
  const check = C.isPlain(u) && typeof u["_tag"] === "string" ? canonical[u["_tag"] as Tag] : undefined
  return check !== undefined && check(u)
}

/**
 * Encode an event to JSON-ready data. An event already in canonical form (every event the
 * explorer makes) is its own encoding and is only checked; anything else goes through the schema.
 * @since 0.1.0 @category encoding
 */
export const encode: (event: JournalEvent) => JournalEventEncoded = C.encoder(JournalEvent, isCanonical)
/**
 * Decode an event; throws a `SchemaError` naming the bad path. Rows in canonical form (every row
 * this version writes) are checked by hand, without the schema's parser; others (older rows
 * without defaulted keys, say, or invalid ones) go through the schema.
 * @since 0.1.0 @category decoding
 */
export const decodeSync: (input: unknown) => JournalEvent = C.decoder(JournalEvent, isCanonical)
/** Build an event of a tag. @since 0.1.0 @category constructors */
export const make = <T extends Tag>(tag: T, fields: Omit<Of<T>, "_tag">): Of<T> => ({ _tag: tag, ...fields }) as Of<T>
