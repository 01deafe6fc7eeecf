/**
 * The events of a run, as appended to its {@link Journal}. The tree, the budget and every
 * view of a run are folds over these events, so replaying a journal rebuilds the run.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Cost from "./Cost.ts"
import * as ExperimentNode from "./ExperimentNode.ts"
import * as Insight from "./Insight.ts"
import { JsonRecord, listOf } from "./internal/schema.ts"
import * as Result from "./Result.ts"
import * as Task from "./Task.ts"

/** The journal format version this code writes. @since 0.1.0 @category constants */
export const FORMAT_VERSION = 1

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
  RunResumed: { at: Schema.Finite },
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

/** A journal entry: the event and its sequence number (1-based, gap-free). @since 0.1.0 @category models */
export interface Entry {
  readonly seq: number
  readonly event: JournalEvent
}

/** Encode an event to JSON-ready data. @since 0.1.0 @category encoding */
export const encode = Schema.encodeSync(JournalEvent)
/** Decode an event; throws a `SchemaError` naming the bad path. @since 0.1.0 @category decoding */
export const decodeSync = Schema.decodeUnknownSync(JournalEvent)
/** Build an event of a tag. @since 0.1.0 @category constructors */
export const make = <T extends Tag>(tag: T, fields: Omit<Of<T>, "_tag">): Of<T> => ({ _tag: tag, ...fields }) as Of<T>
