/**
 * One experiment in the search tree: a strategy derived from its parent, its fingerprint,
 * and its state — Proposed, Queued, Running, Succeeded, Failed, Cancelled or Pruned.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { withDefault } from "./internal/schema.ts"
import * as Result from "./Result.ts"
import * as Strategy from "./Strategy.ts"

/** Id of the virtual root: the task before any experiment. @since 0.1.0 @category constants */
export const ROOT = "root"

/** What a job's wait is said to be for when its backend gave no reason (a `JobState` without `reason`). @since 0.1.0 @category constants */
export const UNSPECIFIED_WAIT = "waiting for resources"

/** Where a job runs: the backend's name and its own id for the job. @since 0.1.0 @category schemas */
export const JobRef = Schema.Struct({
  backend: Schema.NonEmptyString,
  id: Schema.NonEmptyString,
  /** Backend-specific data needed to reattach (host, pid, container id...). */
  data: Schema.Record(Schema.String, Schema.Json).pipe(withDefault({}))
})
/** @since 0.1.0 @category models */
export type JobRef = typeof JobRef.Type

/**
 * The state of a node.
 * @since 0.1.0 @category schemas
 */
export const NodeState = Schema.TaggedUnion({
  Proposed: {},
  Queued: {},
  Running: { job: JobRef, startedAt: Schema.Finite },
  Succeeded: { result: Result.Result, finishedAt: Schema.Finite },
  Failed: { result: Result.Result, finishedAt: Schema.Finite },
  Cancelled: { reason: Schema.String, finishedAt: Schema.Finite },
  Pruned: { reason: Schema.String, result: Schema.optionalKey(Result.Result), finishedAt: Schema.Finite }
})
/** @since 0.1.0 @category models */
export type NodeState = typeof NodeState.Type
/** @since 0.1.0 @category models */
export type StateTag = NodeState["_tag"]

/**
 * What a proposal fixes about a node.
 * @since 0.1.0 @category schemas
 */
export const NodeSpec = Schema.Struct({
  id: Schema.NonEmptyString,
  parent: Schema.NonEmptyString,
  strategy: Strategy.Strategy,
  fingerprint: Schema.NonEmptyString,
  /** Prior probability from the researcher (PUCT). */
  prior: Schema.optionalKey(Schema.Finite),
  proposedAt: Schema.Finite
})
/** @since 0.1.0 @category models */
export type NodeSpec = typeof NodeSpec.Type

/** A node: its spec, depth and current state. @since 0.1.0 @category models */
export interface ExperimentNode extends NodeSpec {
  readonly depth: number
  readonly state: NodeState
}

/** Whether the node has finished (in any way). @since 0.1.0 @category predicates */
export const isFinished = (n: { readonly state: NodeState }): boolean =>
  n.state._tag === "Succeeded" || n.state._tag === "Failed" || n.state._tag === "Cancelled" || n.state._tag === "Pruned"

/** Whether the node is waiting or running. @since 0.1.0 @category predicates */
export const isPending = (n: { readonly state: NodeState }): boolean => !isFinished(n)

/** The node's result, if it has one. @since 0.1.0 @category getters */
export const result = (n: { readonly state: NodeState }): Result.Result | undefined =>
  n.state._tag === "Succeeded" || n.state._tag === "Failed" ? n.state.result
  : n.state._tag === "Pruned" ? n.state.result
  : undefined

/** The node's primary score, when it succeeded with one. @since 0.1.0 @category getters */
export const score = (n: { readonly state: NodeState }): number | undefined =>
  n.state._tag === "Succeeded" ? n.state.result.score : undefined
