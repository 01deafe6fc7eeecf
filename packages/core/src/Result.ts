/**
 * The result of one experiment: metrics, the primary score, learning curves, artifacts,
 * cost and, for a failure, its kind and the last log lines.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as Cost from "./Cost.ts"
import { listOf, NonNegativeInt, withDefault } from "./internal/schema.ts"

/** Why a trial failed. @since 0.1.0 @category schemas */
export const FailureKind = Schema.Literals(["OOM", "Timeout", "Crash", "Infra", "InvalidOutput", "Cancelled"])
/** @since 0.1.0 @category models */
export type FailureKind = typeof FailureKind.Type

/** A failure's kind, message and log tail. @since 0.1.0 @category schemas */
export const Failure = Schema.Struct({
  kind: FailureKind,
  message: Schema.String,
  logTail: listOf(Schema.String),
  exitCode: Schema.optionalKey(Schema.Int),
  retryable: Schema.Boolean.pipe(withDefault(false))
})
/** @since 0.1.0 @category models */
export type Failure = typeof Failure.Type

/** One point of a learning curve. @since 0.1.0 @category schemas */
export const MetricPoint = Schema.Struct({
  step: NonNegativeInt,
  split: Schema.NonEmptyString,
  name: Schema.NonEmptyString,
  value: Schema.Finite
})
/** @since 0.1.0 @category models */
export type MetricPoint = typeof MetricPoint.Type

/** A file a trial produced, relative to its job directory. @since 0.1.0 @category schemas */
export const Artifact = Schema.Struct({ name: Schema.NonEmptyString, path: Schema.NonEmptyString })

/**
 * @example
 * ```ts
 * import { Cost, Result } from "@trex/core"
 * const r: Result.Result = Result.success({ accuracy: 0.9 }, 0.9, Cost.make({ gpuSeconds: 60 }))
 * ```
 * @since 0.1.0 @category schemas
 */
export const Result = Schema.Struct({
  metrics: Schema.Record(Schema.String, Schema.Finite).pipe(withDefault({})),
  score: Schema.optionalKey(Schema.Finite),
  curves: listOf(MetricPoint),
  artifacts: listOf(Artifact),
  summary: Schema.optionalKey(Schema.String),
  cost: Cost.Cost.pipe(withDefault({})),
  failure: Schema.optionalKey(Failure),
  /** Set when this result was reused from an earlier node with the same fingerprint. */
  reusedFrom: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type Result = typeof Result.Type

/** A successful result. @since 0.1.0 @category constructors */
export const success = (metrics: Record<string, number>, score: number, cost: Cost.Cost = Cost.zero): Result => ({
  metrics,
  score,
  curves: [],
  artifacts: [],
  cost
})

/** A failed result. @since 0.1.0 @category constructors */
export const failure = (kind: FailureKind, message: string, options: {
  readonly logTail?: ReadonlyArray<string>
  readonly cost?: Cost.Cost
  readonly exitCode?: number
  readonly retryable?: boolean
} = {}): Result => ({
  metrics: {},
  curves: [],
  artifacts: [],
  cost: options.cost ?? Cost.zero,
  failure: {
    kind,
    message,
    logTail: options.logTail ?? [],
    retryable: options.retryable ?? false,
    ...(options.exitCode !== undefined ? { exitCode: options.exitCode } : {})
  }
})

/**
 * What a job writes to `$TREX_JOB_DIR/result.json` (the job protocol).
 * @since 0.1.0 @category schemas
 */
export const JobResultFile = Schema.Struct({
  metrics: Schema.Record(Schema.String, Schema.Finite),
  primary: Schema.optionalKey(Schema.Finite),
  artifacts: listOf(Artifact),
  summary: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type JobResultFile = typeof JobResultFile.Type
