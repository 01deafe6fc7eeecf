/**
 * An executor that evaluates strategies in-process: for training and evaluation that already live
 * behind a function or a service of your own (an async call), not a job on a backend. It reports the
 * evaluation's intermediate metrics as `Progress` events (a scheduler such as ASHA prunes on them),
 * ends with a `Finished` result, and stops the evaluation when the trial's stream is stopped (a
 * prune, a cancelled run): the function is handed an `AbortSignal` that fires then.
 */
import { Clock, Effect, Queue, Stream } from "effect"
import { Cost, Errors, type ExecutorAgent, Result, type Strategy } from "@trex/core"

/** What the evaluation is handed besides the strategy. */
export interface Evaluation {
  /** Fires when the trial is stopped: stop the work (pass it to `fetch`, check it between steps). */
  readonly signal: AbortSignal
  /** Report metrics at a step (an epoch, a checkpoint) as the evaluation goes; `split` defaults to "dev". */
  readonly report: (step: number, metrics: Readonly<Record<string, number>>, split?: string) => void
  /** 0 for the first try, n for the n-th retry after {@link Unavailable}. */
  readonly attempt: number
}

/** Your training and evaluation: the metrics of a strategy (the task's metric among them). */
export type Evaluate = (strategy: Strategy.Strategy, evaluation: Evaluation) => Promise<Readonly<Record<string, number>>>

/**
 * Throw this from the evaluation when the failure is not the strategy's (the service is down):
 * the explorer runs the trial again after a backoff. Anything else thrown fails the trial.
 */
export class Unavailable extends Error {}

export const inProcess = (evaluate: Evaluate): ExecutorAgent.ExecutorAgentShape => ({
  name: "in-process",
  // No `Submitted` event: there is no job to reattach to after a restart. A resumed run finds the
  // trial admitted without a job and runs it again (`request.reconcile` is set: nothing to look for).
  run: (request) =>
    Stream.callback<ExecutorAgent.ExecutionEvent, Errors.ExecutorError>((queue) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const curves: Array<Result.MetricPoint> = []
        const report = (step: number, metrics: Readonly<Record<string, number>>, split = "dev") => {
          const points = Object.entries(metrics)
            .filter(([, value]) => Number.isFinite(value))
            .map(([name, value]) => ({ step: Math.max(0, Math.round(step)), split, name, value }))
          curves.push(...points)
          Queue.offerUnsafe(queue, { _tag: "Progress", metrics: points })
        }
        // The signal is aborted when this fiber is interrupted: when the stream is stopped.
        const outcome = yield* Effect.result(Effect.tryPromise({
          try: (signal) => evaluate(request.node.strategy, { signal, report, attempt: request.attempt ?? 0 }),
          catch: (error) => error
        }))
        const cost = Cost.make({ wallSeconds: ((yield* Clock.currentTimeMillis) - started) / 1000 })
        const metric = request.task.metric.name
        let result: Result.Result
        if (outcome._tag === "Failure") {
          const error = outcome.failure
          const message = error instanceof Error ? error.message : String(error)
          // not the trial's failure: an error, retried by the explorer (with a backoff, up to its `retries`)
          if (error instanceof Unavailable) {
            return yield* Queue.fail(queue, new Errors.ExecutorError({ nodeId: request.node.id, message, retryable: true }))
          }
          // the trial's own failure: a failed result, never an error
          result = Result.failure("Crash", `the evaluation failed: ${message}`, { cost })
        } else {
          const score = outcome.success[metric]
          result = score === undefined || !Number.isFinite(score)
            ? Result.failure("InvalidOutput", `the evaluation returned no finite "${metric}"`, { cost })
            : { ...Result.success({ ...outcome.success }, score, cost), curves }
        }
        yield* Queue.offer(queue, { _tag: "Finished", result })
        yield* Queue.end(queue)
      })
    )
})
