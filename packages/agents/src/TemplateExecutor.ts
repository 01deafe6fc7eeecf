/**
 * The template executor: maps a strategy to a job through the task's recipe (a command
 * template and resources), runs it on the `Backend`, and turns the job's events into the
 * node's result. A job that exits non-zero, times out, is OOM-killed or writes no valid result
 * becomes a failed node with its kind and the last log lines — never a crash of the run.
 *
 * Strategy values never enter the command line: the command's placeholders are only
 * `{taskDir}`, `{run}`, `{node}` and `{execPath}` (the controller's Node.js, for local jobs written in
 * JavaScript or TypeScript); the job reads its strategy from `strategy.json`.
 *
 * @since 0.1.0
 */
import * as path from "node:path"
import {
  Backend,
  Cost,
  Errors,
  type ExecutorAgent,
  ExecutorAgent as ExecutorAgentService,
  JobProtocol,
  Result,
  Secrets,
  Task,
  TaskFile
} from "@trex/core"
import { Array as Arr, Cause, Channel, Clock, Effect, Layer, type Pull, type Redacted, Schema, Scope, Stream } from "effect"
import { adoptable } from "./internal/adoptable.ts"
import * as JobLog from "./internal/jobLog.ts"
import { ProgressReports } from "./internal/progressReports.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Directory that `{taskDir}` stands for (the task file's folder). */
  readonly taskDir: string
  /** Extra environment for every job (secrets as `Redacted`). */
  readonly env?: Readonly<Record<string, string | Redacted.Redacted<string>>>
  /** Overrides the task's recipe. */
  readonly recipe?: Task.Recipe
  /**
   * Metric points kept in a trial's curves (default 2,000): beyond them the longest series keeps every
   * other point, its first and latest always (see `Result.Curves`), and only the points kept are reported
   * as progress (so journaled).
   */
  readonly maxCurvePoints?: number
  /**
   * A folder to keep each trial's job log in, as its backend streams it and with secrets taken out:
   * `<logDir>/<node id>/trex-job.log`. For backends whose own logs are elsewhere or go (a pod's after its
   * Job's TTL, a removed container's, a remote host's); a new watch of a job that streams its log from
   * the start again replaces the file when the job ends. Default: none kept.
   */
  readonly logDir?: string
}

/**
 * The `argv` for a recipe command; only the four placeholders are substituted.
 * @since 0.1.0 @category utilities
 */
export const argv = (command: ReadonlyArray<string>, vars: { readonly taskDir: string; readonly run: string; readonly node: string }) => {
  const all = { ...vars, execPath: process.execPath }
  return command.map((part) => Task.substitute(part, all))
}

/** A task's JSON form, encoded and printed once per task (every job of a run carries it), indented as a member of `job.json`. */
const taskJson = new WeakMap<Task.Task, string>()
const indentedTask = (task: Task.Task): string => {
  let json = taskJson.get(task)
  if (json === undefined) taskJson.set(task, (json = JSON.stringify(Schema.encodeSync(Task.Task)(task), null, 2).replace(/\n/g, "\n  ")))
  return json
}

/**
 * The job spec for a node.
 * @since 0.1.0 @category constructors
 */
export const jobSpec = (request: ExecutorAgent.ExecutionRequest, recipe: Task.Recipe, options: Options): Backend.JobSpec => {
  const vars = { taskDir: options.taskDir, run: request.runId, node: request.node.id, execPath: process.execPath }
  return {
    name: `trex-${request.runId}-${request.node.id}`,
    argv: argv(recipe.command, vars),
    ...(recipe.image !== undefined ? { image: recipe.image } : {}),
    // the recipe's values with placeholders substituted; `options.env` (secrets, say) as given
    env: { ...Task.substituteEnv(recipe.env, vars), ...options.env },
    files: [
      { path: JobProtocol.STRATEGY_FILE, content: JobProtocol.strategyFile(request.node.strategy) },
      {
        path: JobProtocol.JOB_FILE,
        // JSON.stringify({ run, node, parent, task }, null, 2), with the task printed once per run
        content: `{\n  "run": ${JSON.stringify(request.runId)},\n  "node": ${JSON.stringify(request.node.id)},\n  "parent": ${
          JSON.stringify(request.node.parent)
        },\n  "task": ${indentedTask(request.task)}\n}`
      }
    ],
    resources: recipe.resources,
    labels: { run: request.runId, node: request.node.id }
  }
}

/**
 * Turn a job's exit into a node result: decode `result.json`, pick the primary score
 * (`primary`, else the task metric), attach curves, cost and artifacts; classify failures.
 * @since 0.1.0 @category utilities
 */
export const toResult = (
  task: Task.Task,
  exit: Backend.JobExit,
  curves: ReadonlyArray<Result.MetricPoint>
): Result.Result => {
  const cost = Backend.exitCost(exit)
  const tail = { logTail: exit.logTail, cost, ...(exit.exitCode !== undefined ? { exitCode: exit.exitCode } : {}) }
  if (exit.outcome === "Cancelled") return Result.failure("Cancelled", exit.message ?? "cancelled", tail)
  if (exit.outcome === "Failed") {
    const kind = exit.failureKind ?? "Crash"
    // exit 2: the job protocol's "invalid strategy", whose reason (naming the field) is the job's last line
    if (kind === "Crash" && exit.exitCode === 2 && exit.signal === undefined) {
      const reason = exit.logTail.findLast((l) => l.trim() !== "")
      return Result.failure("Crash", `the job refused the strategy (exit 2)${reason !== undefined ? `: ${reason.trim()}` : ""}`, tail)
    }
    const what = kind === "Timeout" ? "the job ran past its time limit"
      : kind === "OOM" ? "the job ran out of memory"
      : kind === "Infra" ? "the backend lost the job"
      : `the job exited with ${exit.signal !== undefined ? `signal ${exit.signal}` : `code ${exit.exitCode ?? "?"}`}`
    return Result.failure(kind, exit.message ?? what, { ...tail, retryable: kind === "Infra" && exit.retryable !== false })
  }
  if (exit.result === undefined) {
    return Result.failure("InvalidOutput", `the job exited 0 but ${exit.resultError ?? "wrote no result.json"}`, tail)
  }
  const decoded = JobProtocol.decodeResultFile(exit.result, task.metric.name)
  if (decoded._tag === "Failure") {
    // one line, each issue with its path: `metrics.score: Expected number, got "high"`
    const issues = TaskFile.formatIssues(Cause.squash(decoded.cause)).split("\n").map((l) => l.trim()).filter((l) => l !== "")
    return Result.failure("InvalidOutput", `result.json is not valid: ${issues.slice(0, 4).join("; ")}${issues.length > 4 ? `; and ${issues.length - 4} more` : ""}`, tail)
  }
  const file = decoded.value
  const score = file.primary ?? file.metrics[task.metric.name]
  if (score === undefined) {
    return Result.failure(
      "InvalidOutput",
      `result.json has no "primary" and no metric "${task.metric.name}" (metrics: ${Object.keys(file.metrics).join(", ") || "none"})`,
      tail
    )
  }
  return {
    metrics: file.metrics,
    score,
    curves: [...curves],
    artifacts: file.artifacts,
    cost,
    ...(file.summary !== undefined ? { summary: file.summary } : {})
  }
}

/** Times in a row a job's watch that failed with a retryable error is followed again. */
const REWATCHES = 3
/** A watch that lasted this long before it failed was healthy: the count of failures in a row starts again. */
const HEALTHY_MS = 60_000

/**
 * @example
 * ```ts
 * import { TemplateExecutor } from "@trex/agents"
 * import type { Backend } from "@trex/core"
 * declare const backend: Backend.BackendShape
 * const executor = TemplateExecutor.make(backend, { taskDir: "examples/quickstart" })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (backend: Backend.BackendShape, options: Options): ExecutorAgent.ExecutorAgentShape => {
  // what a job prints of a secret (its env's, or the controller's that a local job inherits) never reaches the journal
  const secrets = Secrets.of(options.env, process.env)
  const scrub = Secrets.scrubber(secrets)
  const scrubbed = (exit: Backend.JobExit): Backend.JobExit =>
    secrets.length === 0 ? exit : {
      ...exit,
      logTail: exit.logTail.map(scrub),
      ...(exit.message !== undefined ? { message: scrub(exit.message) } : {}),
      ...(exit.resultError !== undefined ? { resultError: scrub(exit.resultError) } : {})
    }
  /** The job's own summary (from its result.json), with what it holds of a secret taken out as well. */
  const scrubbedResult = (result: Result.Result): Result.Result =>
    result.summary === undefined || secrets.length === 0 ? result : { ...result, summary: scrub(result.summary) }
  return {
    name: "template",
    // a backend that cannot withdraw a queued job in one step: the trial's stream is stopped, which cancels it.
    // One whose withdraw fails (its scheduler unreachable) cannot say whether the job is still queued: it is let
    // run, and followed (a trial stopped and journaled withdrawn would run afresh on resume, beside a job that
    // may start once the scheduler answers).
    withdraw: (job) =>
      backend.withdraw === undefined
        ? Effect.succeed(true)
        : backend.withdraw(job).pipe(
          Effect.catch((e) =>
            Effect.as(Effect.logWarning(`${backend.name}: could not withdraw job ${job.id} (${e.message}): it is let run, and its trial waited for`), false)
          )
        ),
    // the job's watch then reports its Cancelled exit, with what it ran up, and the stream ends with it
    cancel: (job) => Effect.ignore(backend.cancel(job)),
    run: (request) => {
      const recipe = options.recipe ?? request.task.recipe
      const nodeId = request.node.id
      const toError = (e: Errors.BackendError) =>
        new Errors.ExecutorError({ nodeId, message: `${e.backend} ${e.operation}: ${e.message}`, retryable: e.retryable })
      if (recipe === undefined) {
        return Stream.fail(
          new Errors.ExecutorError({ nodeId, message: `task "${request.task.name}" has no recipe: add recipe.command to the task file`, retryable: false })
        )
      }
      // Find or submit the job. A job the backend already has for this node (submitted just
      // before a crash, before the journal heard of it) is adopted, never submitted again; one on
      // record (`request.onRecord`, on a retry after a reattached job failed) was followed already. The look
      // may wait (a backend waits for a host it cannot reach), so a stop may interrupt it; the
      // submit, once decided, may not.
      const look: Effect.Effect<Backend.JobInfo["ref"] | undefined, Errors.BackendError> =
        request.job !== undefined || request.reconcile !== true
          ? Effect.succeed(undefined)
          : Effect.map(backend.list(request.runId), (known) => adoptable(known, nodeId, request.onRecord)?.ref)
      const acquire = (found: Backend.JobInfo["ref"] | undefined): Effect.Effect<{ job: Backend.JobInfo["ref"]; submitted: boolean }, Errors.BackendError> =>
        request.job !== undefined ? Effect.succeed({ job: request.job, submitted: false })
        : found !== undefined ? Effect.succeed({ job: found, submitted: true })
        : Effect.map(backend.submit(jobSpec(request, recipe, options)), (job) => ({ job, submitted: true }))
      const maxPoints = options.maxCurvePoints ?? 2000
      // One stream stage for the whole job (a zero-cost trial's machinery is mostly stream stages):
      // after the submit, `Submitted` first, then the backend's events mapped to execution events,
      // its errors as ExecutorError, and the job cancelled if the stream is stopped before its exit.
      return Stream.fromChannel(Channel.fromTransform((_, scope) => {
        let done = false
        // The submit and the registration of the job's cancel are one uninterruptible step: a stop
        // that lands between them would leave a submitted job running with nobody to cancel it.
        const owned = Effect.flatMap(Effect.mapError(look, toError), (found) =>
          Effect.uninterruptible(Effect.tap(
            Effect.mapError(acquire(found), toError),
            ({ job }) =>
              Scope.addFinalizer(
                scope,
                // Stopped before the job finished (a stop, a prune): cancel it.
                Effect.suspend(() => (done ? Effect.void : Effect.ignore(backend.cancel(job))))
              )
          )))
        return Effect.flatMap(owned, ({ job, submitted }) => {
          const log = options.logDir === undefined
            ? undefined
            : JobLog.make(path.join(options.logDir, nodeId))
          const reports = new ProgressReports(maxPoints)
          const curves = reports.curves
          let head = submitted
          let warned = false
          // A chunk of the job's events becomes at most one progress report (see ProgressReports), before
          // the State or Exit that follows it.
          const toEvents = (chunk: ReadonlyArray<Backend.JobEvent>, now: number): Array<ExecutorAgent.ExecutionEvent> => {
            const out: Array<ExecutorAgent.ExecutionEvent> = []
            const flush = () => {
              const report = reports.flush(now)
              if (report !== undefined) out.push(report)
            }
            // (only when its log is kept: a chunk of a zero-cost trial costs no more than it did)
            const lines: Array<string> | undefined = log !== undefined ? [] : undefined
            for (const ev of chunk) {
              switch (ev._tag) {
                case "Log":
                  lines?.push(secrets.length === 0 ? ev.line : scrub(ev.line))
                  break
                case "Metric":
                case "Progress":
                  reports.add(ev)
                  break
                case "State":
                  flush()
                  out.push(ev)
                  break
                case "Exit":
                  flush()
                  if (lines !== undefined) log?.write(lines.splice(0))
                  log?.end()
                  done = true
                  out.push({ _tag: "Finished", result: scrubbedResult(toResult(request.task, scrubbed(ev), curves.points())) })
                  break
              }
            }
            flush()
            if (lines !== undefined) log?.write(lines)
            return out
          }
          // said once, where the run's output goes: the curves are coarser than what the job reported
          const thinnedNote = Effect.suspend(() => {
            if (warned || !curves.thinned) return Effect.void
            warned = true
            return Effect.logWarning(
              `trial ${nodeId}: its job reported more than ${curves.max} metric points; its curves keep fewer of them (the first, the latest, and evenly spaced ones between; the job's own stdout.log and metrics.jsonl keep every point)`
            )
          })
          // said once: the job's log could not be kept (a full disk), which does not fail the trial
          const logNote = Effect.suspend(() => {
            const warning = log?.takeWarning()
            return warning === undefined ? Effect.void : Effect.logWarning(`trial ${nodeId}: ${warning}`)
          })
          const toFailure = (e: Errors.BackendError | Cause.Done) => (Cause.isDone(e) ? e : toError(e))
          // each time a new watch of the job (a backend's watch may hold state of its own)
          const follow = Effect.suspend(() => Channel.toPullScoped(Stream.toChannel(backend.watch(job)), scope)).pipe(
            Effect.tap(() =>
              Effect.sync(() => {
                watchedAt = Date.now()
                log?.start()
              })
            )
          )
          let watchedAt = 0
          return follow.pipe(
            Effect.map((first) => {
              let upstream = first
              // A watch that fails with a retryable error (a lost connection to the engine, the
              // controller, the host) is followed again, the job left running: up to REWATCHES
              // times in a row (a watch that lasted HEALTHY_MS counts as a new start), after 1, 2,
              // 4 s. (A backend's watch may start again from the job's first log line: a metric seen
              // twice replaces itself in the curves.)
              let rewatches = 0
              // The job's last state, and a watch that failed: until the next one is followed (after a
              // pause), the trial is said to be out of touch with its job; its first events end that.
              let lastState: "Pending" | "Running" = "Running"
              let lost: Errors.BackendError | undefined
              let outOfTouch = false
              const rewatch = (e: Errors.BackendError) =>
                Effect.logWarning(`trial ${nodeId}: following job ${job.id} again after ${e.backend} ${e.operation} failed: ${e.message}`).pipe(
                  Effect.andThen(Effect.sleep(`${2 ** rewatches} seconds`)),
                  Effect.andThen(follow),
                  Effect.mapError(toFailure),
                  Effect.flatMap((next) => {
                    upstream = next
                    rewatches++
                    return fromUpstream()
                  })
                )
              const fromUpstream = (): Effect.Effect<Arr.NonEmptyReadonlyArray<Backend.JobEvent>, Errors.ExecutorError | Cause.Done> => {
                if (lost !== undefined) {
                  const e = lost
                  lost = undefined
                  return rewatch(e)
                }
                return upstream.pipe(
                  Effect.map((chunk): Arr.NonEmptyReadonlyArray<Backend.JobEvent> => {
                    const back = outOfTouch
                    outOfTouch = false
                    const state = lastState
                    for (const ev of chunk) if (ev._tag === "State") lastState = ev.state
                    return back ? [{ _tag: "State", state }, ...chunk] : chunk
                  }),
                  Effect.catch((e) => {
                    if (Cause.isDone(e) || !e.retryable || (Date.now() - watchedAt < HEALTHY_MS ? rewatches : (rewatches = 0)) >= REWATCHES) {
                      return Effect.fail(toFailure(e))
                    }
                    lost = e
                    outOfTouch = true
                    const reason = `${e.backend} ${e.operation} failed (${e.message}); following the job again`
                    return Effect.succeed([{ _tag: "State", state: lastState, reason }] as const)
                  })
                )
              }
              const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<ExecutorAgent.ExecutionEvent>, Errors.ExecutorError> = Effect.suspend(() => {
                if (head) {
                  head = false
                  return Effect.succeed([{ _tag: "Submitted", job }] as const)
                }
                return fromUpstream().pipe(
                  Effect.flatMap((chunk) =>
                    Effect.flatMap(Clock.currentTimeMillis, (now) => {
                      const out = toEvents(chunk, now)
                      return Effect.andThen(Effect.andThen(thinnedNote, logNote), Arr.isArrayNonEmpty(out) ? Effect.succeed(out) : pull)
                    })
                  )
                )
              })
              return pull
            })
          )
        })
      }))
    }
  }
}

/**
 * The template executor as the `ExecutorAgent` service, on the `Backend` in context.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options): Layer.Layer<ExecutorAgentService.ExecutorAgent, never, Backend.Backend> =>
  Layer.effect(
    ExecutorAgentService.ExecutorAgent,
    Effect.gen(function*() {
      return make(yield* Backend.Backend, options)
    })
  )
