/**
 * The `ExecutorAgent` contract: turns a node's strategy into work on a backend and reports
 * what happens, ending with the node's result. Implementations in `@trex/agents`:
 * `TemplateExecutor` (a command template) and `CodeAgentExecutor` (writes and debugs scripts).
 *
 * Interrupting the stream cancels the job. A trial's own failure is a `Finished` event with
 * a failed result, never an error; errors are for infrastructure the agent cannot get past.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { ExecutorError } from "./Errors.ts"
import type { JobRef, NodeSpec } from "./ExperimentNode.ts"
import type { MetricPoint, Result } from "./Result.ts"
import type { Task } from "./Task.ts"

/** What to execute. @since 0.1.0 @category models */
export interface ExecutionRequest {
  readonly task: Task
  readonly runId: string
  /** The run's directory (job folders go under `jobs/<node>`). */
  readonly runDir: string
  readonly node: NodeSpec
  /** A job already submitted before a restart: reattach to it instead of submitting. */
  readonly job?: JobRef
  /**
   * With `job`: every job journaled for this node (each `Submitted` it reported), in order, the last
   * being `job` — one entry per submission, so two may share an id (the local backend reuses the
   * node's directory, and with it the id, for each of its jobs). A job a draining run withdrew (it
   * never started) is left out. The journal does not mark where a retry (`attempt`) began, so jobs
   * of earlier execution attempts are in it too. An executor that runs several jobs per node (the
   * code agent's training attempts) counts the ones it has used from it; others ignore it.
   */
  readonly jobs?: ReadonlyArray<JobRef>
  /**
   * 0 for the first execution; n for the n-th retry after a retryable failure, which must
   * submit afresh rather than adopt the failed job (unless `reconcile` is set).
   */
  readonly attempt?: number
  /**
   * Set when resuming a node that was admitted before a crash but has no submission on record:
   * the job may exist anyway (the controller died between submit and journaling it), so the
   * executor looks for it (`Backend.list`) before submitting, and adopts it if it is there. Set
   * on every attempt until one has reported a `Submitted`: an attempt that failed before it
   * (the backend could not list its jobs: a host or its controller unreachable) has not looked,
   * so the retry looks again rather than submit a second copy beside the one it could not see.
   *
   * Also set (since 2026-12) on a retry after a reattached `job` failed: then the node HAS jobs on
   * record (`onRecord`), the failed one among them, and the one to adopt is a job of the node not in
   * `onRecord` (not finished if there is one, else the last submitted); with none, submit. An executor
   * written when `reconcile` meant only "nothing on record", adopting the node's first listed job,
   * adopts the failed job there and reads its end again: the explorer warns (once per node and job; not on the
   * local, SSH and simulator backends, where a fresh job may have an id on record)
   * when a reconciling attempt reports a job in `onRecord`. The order `Backend.list` gives is no
   * submission order (Kubernetes lists by name, Docker newest first, SSH by host): order by
   * `submittedAt` only when every listed job has it.
   */
  readonly reconcile?: boolean
  /**
   * With `job` or `reconcile`: every job the journal holds for this node (withdrawn ones too) and those
   * the node reported since the restart. An executor that looks for the node's jobs (`Backend.list`)
   * never adopts one of these: they were followed already. `reconcile` is set as well on a retry after
   * a reattached `job` failed (lost, say): the controller may have died just after submitting that
   * failure's retry, its job running but not on record, which is adopted, never run beside a new one.
   * A backend that reuses a job's id for the node's next job (the local backend: the node's directory)
   * follows that next job when the earlier one is reattached, and lists it under the id on record.
   */
  readonly onRecord?: ReadonlyArray<JobRef>
}

/** @since 0.1.0 @category models */
export type ExecutionEvent =
  /**
   * A job the executor submitted, or adopted while reconciling (found on the backend, not on record).
   * Each is journaled as a `JobSubmitted`, one per submission, so a reattached `request.job` (on
   * record already) is not reported again.
   */
  | { readonly _tag: "Submitted"; readonly job: JobRef }
  /**
   * The trial's job waits in its backend's queue (`Pending`: for a GPU, a slot, a Slurm allocation) or
   * runs. Optional: a trial reported waiting is withdrawn when a run drains (it has not started, so it
   * runs on resume instead of holding the stop up); one never reported waiting is let finish.
   * `Running` with a `reason`: the job is taken to run on, but cannot be followed now (its backend
   * does not answer; see `Backend.JobEvent`); the next `State` ends that.
   */
  | { readonly _tag: "State"; readonly state: "Pending" | "Running"; readonly reason?: string }
  | { readonly _tag: "Progress"; readonly fraction?: number; readonly message?: string; readonly metrics: ReadonlyArray<MetricPoint> }
  | { readonly _tag: "Log"; readonly line: string }
  | { readonly _tag: "Finished"; readonly result: Result }

/** The members of an executor agent. @since 0.1.0 @category models */
export interface ExecutorAgentShape {
  readonly name: string
  readonly run: (request: ExecutionRequest) => Stream.Stream<ExecutionEvent, ExecutorError>
  /**
   * Optional: withdraw a job reported `Pending` if it is still queued (see `Backend.withdraw`):
   * `true` when it was withdrawn (the trial's stream may then be stopped), `false` when it has
   * started and should be let finish. Without it, a drain stops the trials last reported `Pending`.
   */
  readonly withdraw?: (job: JobRef) => Effect.Effect<boolean>
  /**
   * Optional: cancel a running job and let its stream go on to its end, a `Finished` event with the
   * `Cancelled` failure the job ended with and the cost it ran up until then (or its result, if it
   * finished first). A scheduler's prune goes through it, so the GPU time a pruned trial used is
   * charged to the budget. Without it, a prune stops the stream (which cancels the job), and what
   * the trial cost is not known.
   */
  readonly cancel?: (job: JobRef) => Effect.Effect<void>
}

/** @since 0.1.0 @category services */
export class ExecutorAgent extends Context.Service<ExecutorAgent, ExecutorAgentShape>()("@trex/core/ExecutorAgent") {}
