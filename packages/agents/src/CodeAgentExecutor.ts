/**
 * An `ExecutorAgent` that writes, runs and debugs the training code itself: a model works in
 * a workspace through tools — `write_file`, `read_file` (workspace paths only), `run_command`
 * (a short job on the same backend, labelled `<node>.cmd`), `submit_training_job` (the real
 * run, labelled with the node, its metrics streamed as events) and `read_job_logs` — for a
 * bounded number of turns and training attempts. Every job gets the workspace's files. It ends
 * with `Finished`: the decoded `result.json`, or a failed result (Crash, InvalidOutput, ...)
 * with the last logs when the attempts run out. Resumed after a crash, it cancels the command
 * the lost session left running and adopts the node's last training job (one still running, if
 * any), never running it twice; if that job did not succeed and attempts are left, a new
 * conversation goes on with them, told what failed and that its workspace files are gone. The
 * attempts used are the node's training jobs the journal holds (`request.jobs`), and any the
 * backend lists that it does not, so a controller that keeps dying never gets more than `maxAttempts`.
 * `cancel` (a scheduler's prune) ends the node with the training job's `Cancelled` exit and the
 * cost it ran up; it is never an attempt to retry. The node's cost is that of every job its session
 * ran: the failed training attempts and the commands too (after a restart, the jobs of the sessions
 * before it are not known, but for the one reattached to).
 *
 * @since 0.1.0
 */
import * as Path from "node:path"
import { Backend, Cost, Errors, ExecutorAgent, type ExperimentNode, JobProtocol, Result, Secrets, Strategy, Task } from "@trex/core"
import { Clock, Deferred, Effect, Exit, Layer, Queue, Redacted, Schema, Stream } from "effect"
import * as Conversation from "./internal/codeAgentContext.ts"
import { environment, SYSTEM, tools } from "./internal/codeAgentPrompt.ts"
import { Workspace } from "./internal/codeAgentWorkspace.ts"
import { adoptable } from "./internal/adoptable.ts"
import * as JobLog from "./internal/jobLog.ts"
import * as Http from "./internal/modelHttp.ts"
import { ProgressReports } from "./internal/progressReports.ts"
import * as AnthropicModel from "./model/AnthropicModel.ts"
import * as Model from "./model/Model.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Model turns per node (default 30). */
  readonly maxTurns?: number
  /** Training submissions per node (default 3). */
  readonly maxAttempts?: number
  /** Default and maximum time limit of `run_command`, in seconds (default 300). */
  readonly commandTimeoutSeconds?: number
  /** Output tokens per model turn (default 8192). */
  readonly maxTokens?: number
  /** Log lines kept per job and shown to the model (default 60). */
  readonly logLines?: number
  /** Directory that `{taskDir}` stands for in the recipe's `env` values (the task file's folder; default: the current directory). */
  readonly taskDir?: string
  /**
   * Extra environment for every job (secrets as `Redacted`, e.g. `HF_TOKEN`). The agent is told each
   * secret's name, never its value, and the value is taken out of every output it reads back.
   */
  readonly env?: Readonly<Record<string, string | Redacted.Redacted<string>>>
  /**
   * A folder to keep each trial's training log in, as its backend streams it and with secrets taken
   * out: `<logDir>/<node id>/trex-job.log`, written anew by each training job (the trial's result is
   * its last one's). Default: none kept.
   */
  readonly logDir?: string
}

const Argv = Schema.Array(Schema.String).check(Schema.isMinLength(1))
const inputs = {
  write_file: Schema.Struct({ path: Schema.String, content: Schema.String }),
  read_file: Schema.Struct({ path: Schema.String }),
  run_command: Schema.Struct({ argv: Argv, timeoutSeconds: Schema.optionalKey(Schema.Finite) }),
  submit_training_job: Schema.Struct({ argv: Argv }),
  read_job_logs: Schema.Struct({ lines: Schema.optionalKey(Schema.Int) })
}

interface Ran {
  readonly exit: Backend.JobExit
  readonly logs: ReadonlyArray<string>
  readonly curves: ReadonlyArray<Result.MetricPoint>
}

type Outcome = { readonly _tag: "Done"; readonly result: Result.Result } | { readonly _tag: "Failed"; readonly failure: Result.Result }

/** The node's result from a training job's exit. */
const outcomeOf = (task: Task.Task, ran: Ran) =>
  Effect.gen(function*() {
    const { exit } = ran
    const cost = Backend.exitCost(exit)
    const fail = (kind: Result.FailureKind, message: string): Outcome => ({
      _tag: "Failed",
      failure: Result.failure(kind, message, { logTail: ran.logs, cost, ...(exit.exitCode !== undefined ? { exitCode: exit.exitCode } : {}) })
    })
    if (exit.outcome !== "Succeeded") {
      return fail(exit.outcome === "Cancelled" ? "Cancelled" : exit.failureKind ?? "Crash", exit.message ?? `exit code ${exit.exitCode ?? "?"}`)
    }
    if (exit.result === undefined) return fail("InvalidOutput", exit.resultError ?? "the job exited 0 without writing result.json")
    const decoded = JobProtocol.decodeResultFile(exit.result, task.metric.name)
    if (decoded._tag === "Failure") {
      return fail("InvalidOutput", `result.json does not match the job protocol ({metrics, primary?, artifacts?, summary?}): ${String(decoded.cause).split("\n").slice(0, 6).join("\n")}`)
    }
    const file = decoded.value
    const score = file.primary ?? file.metrics[task.metric.name]
    if (score === undefined) return fail("InvalidOutput", `result.json has no "primary" and no metric "${task.metric.name}"`)
    const result: Result.Result = {
      metrics: file.metrics,
      score,
      curves: ran.curves,
      artifacts: file.artifacts,
      cost,
      ...(file.summary !== undefined ? { summary: file.summary } : {})
    }
    return { _tag: "Done", result } satisfies Outcome
  })

const describeExit = (ran: Ran, lines: number): string =>
  `${ran.exit.outcome}${ran.exit.exitCode !== undefined ? ` (exit code ${ran.exit.exitCode})` : ""}` +
  `${ran.exit.message ? `: ${ran.exit.message}` : ""}\n--- last output ---\n${ran.logs.slice(-lines).join("\n")}`

/**
 * The training attempts a node resumed after a restart has used: every job journaled for it (one per
 * submission, even when a backend reuses an id: the local backend's jobs of a node share their
 * directory's), and the jobs the backend lists for it and the one adopted or reattached that the
 * journal does not hold (submitted just before a crash, before its record was committed).
 */
const attemptsUsed = (
  journaled: ReadonlyArray<ExperimentNode.JobRef>,
  listed: ReadonlyArray<ExperimentNode.JobRef>,
  job: ExperimentNode.JobRef
): number => {
  const recorded = new Set(journaled.map((j) => j.id))
  return journaled.length + new Set([...listed, job].map((j) => j.id).filter((id) => !recorded.has(id))).size
}

/**
 * The label (`labels.node`) of the commands for node `nodeId`; on the local backend it names their
 * job directory, `<root>/<node>.cmd`, beside the node's own.
 */
const commandLabelOf = (nodeId: string): string => `${nodeId}.cmd`

/**
 * Build the executor from a `Model` and a `Backend` in context.
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("CodeAgentExecutor.make")(function*(options: Options = {}) {
  const model = yield* Model.Model
  const backend = yield* Backend.Backend
  const maxTurns = options.maxTurns ?? 30
  const maxAttempts = options.maxAttempts ?? 3
  const commandLimit = options.commandTimeoutSeconds ?? 300
  const logLines = options.logLines ?? 60
  const maxTokens = options.maxTokens ?? 8192
  /** `text` with every secret's value replaced by its name. */
  const scrub = Secrets.scrubber(Secrets.of(options.env, process.env))
  /** The sessions' `cancel`, by the id of each training job they followed: `cancel(job)` finds its session there. */
  const cancels = new Map<string, Effect.Effect<void>>()
  /**
   * The model's refusal of the key, its permission or the model's name, or a wait the server asked for
   * that was not waited out (`Http.barredUntil`), once met: every turn after it, of any session, fails
   * with it at once while it holds rather than ask again, so the run's trials fail alike at once (and
   * the run stops on them) with no call more than those in flight.
   */
  let barred: { readonly error: Model.ModelError; readonly until: number } | undefined

  const session = (request: ExecutorAgent.ExecutionRequest, emitEvent: (e: ExecutorAgent.ExecutionEvent) => Effect.Effect<unknown>) => {
    // The node's cost is what every job of the session ran up (its failed training attempts and its
    // commands as well as the job whose exit is the result), not its last job's alone.
    let spent = Cost.zero
    const emit = (e: ExecutorAgent.ExecutionEvent) => emitEvent(e._tag === "Finished" ? { ...e, result: { ...e.result, cost: spent } } : e)
    // A cancel (a scheduler's prune) ends the node, never an attempt to go back to the model with:
    // the training job being followed is cancelled and its exit (with what it cost) is the node's
    // result; asked between attempts, the session stops its model turn or command at once.
    let cancelled = false
    const cancelRequested = Deferred.makeUnsafe<void>()
    let training: ExperimentNode.JobRef | undefined
    const followed = new Set<string>()
    const cancel: Effect.Effect<void> = Effect.suspend(() => {
      cancelled = true
      Deferred.doneUnsafe(cancelRequested, Exit.void)
      return training !== undefined ? Effect.ignore(backend.cancel(training)) : Effect.void
    })
    /** `self`, unless a cancel comes first: then `undefined`, and `self` is interrupted (a command's job with it). */
    const unlessCancelled = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A | undefined, E> =>
      Effect.raceFirst(self, Deferred.await(cancelRequested).pipe(Effect.as(undefined)))

    return Effect.gen(function*() {
      const node = request.node
      const toExecutorError = (e: Model.ModelError) =>
        new Errors.ExecutorError({ nodeId: node.id, message: e.message, retryable: e.retryable, ...(Http.refusesSettings(e) ? { setup: true } : {}) })
      const recipe = request.task.recipe
      const placeholders = { taskDir: options.taskDir ?? process.cwd(), run: request.runId, node: node.id, execPath: process.execPath }
      const protocolFiles = [
        { path: JobProtocol.STRATEGY_FILE, content: JSON.stringify(Strategy.encode(node.strategy), null, 2) },
        {
          path: JobProtocol.JOB_FILE,
          content: JSON.stringify({ run: request.runId, node: node.id, parent: node.parent, task: Schema.encodeSync(Task.Task)(request.task) })
        }
      ]
      const recipeEnv = recipe !== undefined ? Task.substituteEnv(recipe.env, placeholders) : {}
      const told = environment({
        backend: backend.name,
        recipe,
        command: recipe?.command.map((part) => Task.substitute(part, placeholders)),
        env: { ...recipeEnv, ...Object.fromEntries(Object.entries(options.env ?? {}).flatMap(([k, v]) => (typeof v === "string" ? [[k, v]] : []))) },
        secrets: Object.entries(options.env ?? {}).flatMap(([k, v]) => (typeof v === "string" ? [] : [k])),
        taskDir: placeholders.taskDir,
        commandLimit
      })
      const workspace = new Workspace()
      let lastLogs: ReadonlyArray<string> = []
      let jobs = 0
      let attempts = 0
      const neverSubmitted = Result.failure("Crash", "the code agent never submitted a training job")
      let lastFailure = neverSubmitted
      /** What the node ends with when a cancel comes between training attempts: the last one's logs (and, as every result, what all jobs cost). */
      const cancelledResult = (): Result.Result =>
        lastFailure.failure?.kind === "Cancelled"
          ? lastFailure
          : Result.failure(
            "Cancelled",
            `cancelled before training attempt ${attempts + 1} of ${maxAttempts}` +
              (lastFailure !== neverSubmitted ? ` (attempt ${attempts} failed: ${lastFailure.failure?.message})` : ""),
            { logTail: lastLogs }
          )

      /**
       * Run one job (a submit, or a job to reattach to) to its exit, cancelled if the run stops
       * first; a live (training) job's events go out as execution events, `Submitted` first unless
       * the job is on record already (`request.job`: journaled once per submission).
       */
      const execute = <E>(job: Effect.Effect<ExperimentNode.JobRef, E>, live: boolean, recorded = false) =>
        Backend.withJob(backend, job, (ref) => watchToExit(ref, live, recorded))

      const watchToExit = (ref: ExperimentNode.JobRef, live: boolean, recorded: boolean) =>
        Effect.gen(function*() {
          if (live) {
            training = ref
            followed.add(ref.id)
            cancels.set(ref.id, cancel)
            // asked for while it was being submitted
            if (cancelled) yield* Effect.ignore(backend.cancel(ref))
            if (!recorded) yield* emit({ _tag: "Submitted", job: ref })
          }
          const tail = new JobProtocol.Tail(logLines * 2)
          // a training job's log kept in the run's folder (see `Options.logDir`)
          const kept = live && options.logDir !== undefined ? JobLog.make(Path.join(options.logDir, node.id), { fresh: true }) : undefined
          kept?.start()
          // bounded however often the job reports: a chunk of its events is one progress report (ProgressReports)
          const reports = new ProgressReports()
          let exit: Backend.JobExit | undefined
          yield* Backend.follow(backend, ref).pipe(
            Stream.runForEachArray((events) =>
              Effect.gen(function*() {
                const lines: Array<string> = []
                for (const event of events) {
                  switch (event._tag) {
                    case "Log": {
                      const line = scrub(event.line)
                      tail.push(line)
                      if (kept !== undefined) lines.push(line)
                      if (live) yield* emit({ _tag: "Log", line })
                      break
                    }
                    case "Metric":
                    case "Progress":
                      reports.add(event)
                      break
                    case "Exit":
                      exit = {
                        ...event,
                        logTail: event.logTail.map(scrub),
                        ...(event.message !== undefined ? { message: scrub(event.message) } : {})
                      }
                      break
                  }
                }
                kept?.write(lines)
                const report = reports.flush(yield* Clock.currentTimeMillis)
                if (live && report !== undefined) yield* emit(report)
              })
            )
          )
          kept?.end()
          const unkept = kept?.takeWarning()
          if (unkept !== undefined) yield* Effect.logWarning(`trial ${node.id}: ${unkept}`)
          if (live) training = undefined
          if (exit === undefined) return yield* Effect.die(new Error(`backend ${backend.name}: watch(${ref.id}) ended without an Exit event`))
          spent = Cost.add(spent, Backend.exitCost(exit))
          const logs = tail.get().length > 0 ? tail.get() : exit.logTail
          lastLogs = logs
          return { exit, logs, curves: reports.curves.points() } satisfies Ran
        })

      // A training job is labelled with the node (its job directory is the node's, and a resumed run
      // finds it by that label); a command with a label of its own, so that it never shares a job
      // identity (a directory, on the local backend) with a training job, and a leftover command is
      // told apart from a leftover training job.
      const commandLabel = commandLabelOf(node.id)
      const submit = (argv: ReadonlyArray<string>, kind: "cmd" | "train", timeLimitSeconds: number | undefined) =>
        backend.submit({
          name: `trex-${request.runId}-${node.id}-${kind}${++jobs}`,
          argv,
          ...(recipe?.image !== undefined ? { image: recipe.image } : {}),
          env: { ...recipeEnv, ...options.env },
          files: [...protocolFiles, ...workspace.list()],
          resources: kind === "train"
            ? recipe?.resources ?? { gpus: 0, cpus: 1 }
            : { gpus: 0, cpus: 1, ...(timeLimitSeconds !== undefined ? { timeLimitSeconds } : {}) },
          labels: { run: request.runId, node: kind === "train" ? node.id : commandLabel }
        })

      // After a restart: the session that ran before is gone, and so is any use for the command it
      // left running (cancelled, so it frees its slot); a training job it submitted whose submission
      // was never recorded is adopted, never run a second time.
      const cancelCommands = (known: ReadonlyArray<Backend.JobInfo>) =>
        Effect.forEach(known, (j) => (j.labels.node === commandLabel && j.state !== "Finished" ? backend.cancel(j.ref) : Effect.void), {
          discard: true
        })
      let job = request.job
      let known: ReadonlyArray<Backend.JobInfo> | undefined
      if (job !== undefined) {
        // reattaching to the recorded training job needs none of this: a failure here is not the node's
        known = yield* backend.list(request.runId).pipe(Effect.orElseSucceed(() => undefined))
        if (known !== undefined) yield* cancelCommands(known).pipe(Effect.ignore)
        // a later training job than the one on record, submitted just before the crash (the agent's next
        // attempt, its record not committed), is the one running now: followed, never run beside a new one
        job = (known !== undefined ? adoptable(known, node.id, request.onRecord ?? request.jobs ?? [job], job) : undefined)?.ref ?? job
      } else if (request.reconcile === true) {
        known = yield* backend.list(request.runId)
        yield* cancelCommands(known)
        // the node's jobs on record (`onRecord`, on a retry after a reattached job failed) were followed: never adopted again
        job = adoptable(known, node.id, request.onRecord)?.ref
      }

      // After a restart, a training job that failed does not end the node while attempts are left: the
      // lost sessions' attempts count as used, and a new conversation goes on with the rest, told what failed.
      // One cancelled before the restart (the run's stop cancels the jobs in flight) runs again: it is no attempt.
      let resumedAfter: string | undefined
      if (job !== undefined) {
        const ran = yield* execute(Effect.succeed(job), true, job === request.job)
        const outcome = yield* outcomeOf(request.task, ran)
        if (outcome._tag === "Done") return yield* emit({ _tag: "Finished", result: outcome.result })
        const stopped = ran.exit.outcome === "Cancelled" && !cancelled
        attempts = attemptsUsed(request.jobs ?? [], (known ?? []).filter((j) => j.labels.node === node.id).map((j) => j.ref), job) - (stopped ? 1 : 0)
        if (!stopped) lastFailure = outcome.failure
        if (attempts >= maxAttempts) return yield* emit({ _tag: "Finished", result: outcome.failure })
        if (cancelled) return yield* emit({ _tag: "Finished", result: cancelledResult() })
        const failedBefore = stopped ? attempts : attempts - 1
        resumedAfter = `This session was resumed after a restart of the controller: the conversation before it is lost, and ` +
          `so are the files you wrote (the workspace is kept in memory), so write them again before you run anything.\n` +
          (failedBefore === 1 ? "Training attempt 1 failed before it. " : failedBefore > 1 ? `Training attempts 1 to ${failedBefore} failed before it. ` : "") +
          (stopped
            ? `Training attempt ${attempts + 1} of ${maxAttempts} was cancelled when the run was stopped, so it does not count: run it again.\n`
            : `Training attempt ${attempts} of ${maxAttempts} failed (${outcome.failure.failure?.kind}): ${outcome.failure.failure?.message}\n`) +
          describeExit(ran, logLines) + "\n\n"
      }
      /** Run one tool call: the text for the model, or the node's final result. */
      const handle = (call: { readonly name: string; readonly input: unknown }) =>
        Effect.gen(function*() {
          const reply = (content: string, isError = false) => ({ content, isError, final: undefined as Result.Result | undefined })
          switch (call.name) {
            case "write_file": {
              const input = yield* Schema.decodeUnknownEffect(inputs.write_file)(call.input).pipe(Effect.option)
              if (input._tag === "None") return reply("write_file needs {path, content}", true)
              const problem = workspace.write(input.value.path, input.value.content)
              return problem === undefined ? reply(`wrote ${input.value.path} (${input.value.content.length} chars)`) : reply(problem, true)
            }
            case "read_file": {
              const input = yield* Schema.decodeUnknownEffect(inputs.read_file)(call.input).pipe(Effect.option)
              if (input._tag === "None") return reply("read_file needs {path}", true)
              const read = workspace.read(input.value.path)
              return "content" in read ? reply(read.content) : reply(read.problem, true)
            }
            case "run_command": {
              const input = yield* Schema.decodeUnknownEffect(inputs.run_command)(call.input).pipe(Effect.option)
              if (input._tag === "None") return reply("run_command needs {argv: [program, ...args]}", true)
              const limit = Math.min(commandLimit, input.value.timeoutSeconds ?? commandLimit)
              const ran = yield* unlessCancelled(execute(submit(input.value.argv, "cmd", limit), false))
              if (ran === undefined) return { content: "cancelled", isError: true, final: cancelledResult() }
              return reply(describeExit(ran, logLines), ran.exit.outcome !== "Succeeded")
            }
            case "submit_training_job": {
              const input = yield* Schema.decodeUnknownEffect(inputs.submit_training_job)(call.input).pipe(Effect.option)
              if (input._tag === "None") return reply("submit_training_job needs {argv: [program, ...args]}", true)
              attempts++
              const ran = yield* execute(submit(input.value.argv, "train", recipe?.resources.timeLimitSeconds), true)
              const outcome = yield* outcomeOf(request.task, ran)
              if (outcome._tag === "Done") return { content: "succeeded", isError: false, final: outcome.result }
              lastFailure = outcome.failure
              if (attempts >= maxAttempts) return { content: "out of attempts", isError: true, final: outcome.failure }
              if (cancelled) return { content: "cancelled", isError: true, final: cancelledResult() }
              return reply(
                `training attempt ${attempts} of ${maxAttempts} failed (${outcome.failure.failure?.kind}): ${outcome.failure.failure?.message}\n` +
                  describeExit(ran, logLines),
                true
              )
            }
            case "read_job_logs": {
              const input = yield* Schema.decodeUnknownEffect(inputs.read_job_logs)(call.input).pipe(Effect.option)
              const n = input._tag === "Some" ? input.value.lines ?? logLines : logLines
              return reply(lastLogs.length > 0 ? lastLogs.slice(-n).join("\n") : "no job has run yet")
            }
            default:
              return reply(`unknown tool ${call.name}`, true)
          }
        })

      const messages: Array<Model.Message> = [
        Model.user(
          `Task: ${request.task.objective}\nMetric: ${request.task.metric.name} (${request.task.metric.direction}); ` +
            `result.json "primary" must be this metric.\n` +
            (request.task.baseModel ? `Base model: ${request.task.baseModel.name}\n` : "") +
            (request.task.datasets.length > 0 ? `Datasets: ${request.task.datasets.map((d) => d.uri ?? d.name).join(", ")}\n` : "") +
            `\nStrategy for node ${node.id} (also in strategy.json):\n${JSON.stringify(Strategy.encode(node.strategy), null, 2)}\n\n` +
            `${told}\n\n` +
            (resumedAfter ?? "") +
            `Write the data preparation and training code for this strategy, check it, and submit the training job. ` +
            (resumedAfter === undefined
              ? `You have ${maxAttempts} training attempts and ${maxTurns} turns.`
              : `You have ${maxAttempts - attempts} training attempt(s) left of ${maxAttempts}, and ${maxTurns} turns.`)
        )
      ]
      const outgrown = (turn: number) =>
        `node ${node.id}'s conversation outgrew the model's context window at turn ${turn + 1}, its old file contents and outputs ` +
        `already elided: lower logLines (${logLines}) or maxTurns (${maxTurns}), or use a model with a larger window (TREX_MODEL)`
      /** The model's next turn; a conversation that outgrew the model's window is made shorter and asked again. */
      const generate = (): Effect.Effect<Model.Response, Model.ModelError> =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          barred !== undefined && now < barred.until ? Effect.fail(barred.error) : model.generate({ system: SYSTEM, messages, tools, toolChoice: { type: "auto" }, maxTokens, reason: "code-agent" }).pipe(
            Effect.tapError((e) =>
              Effect.map(Clock.currentTimeMillis, (at) => {
                const until = Http.barredUntil(e, at)
                if (until !== undefined) barred = { error: e, until }
              })
            ),
            Effect.catchIf((e) => Http.outgrew(e) && Conversation.compact(messages) > 0, generate)
          ))
      const ask = (turn: number): Effect.Effect<Model.Response, Errors.ExecutorError> =>
        generate().pipe(
          Effect.mapError((e) =>
            Http.outgrew(e)
              ? new Errors.ExecutorError({ nodeId: node.id, message: `${e.message} (${outgrown(turn)})`, retryable: false })
              : toExecutorError(e)
          )
        )
      for (let turn = 0; turn < maxTurns; turn++) {
        const response = yield* unlessCancelled(ask(turn))
        if (response === undefined) return yield* emit({ _tag: "Finished", result: cancelledResult() })
        // an answer the window cut short is asked again of a shorter conversation
        if (response.stopReason === "model_context_window_exceeded") {
          if (Conversation.compact(messages) > 0) continue
          return yield* new Errors.ExecutorError({
            nodeId: node.id,
            message: `the model's answer was cut short (stop reason model_context_window_exceeded): ${outgrown(turn)}`,
            retryable: false
          })
        }
        // an empty answer (end_turn with nothing) is not sent back: the API refuses a message without content
        if (response.content.length > 0) messages.push({ role: "assistant", content: response.content })
        const said = Model.text(response).trim()
        if (said.length > 0) yield* emit({ _tag: "Log", line: `[agent] ${said.slice(0, 2000)}` })
        // a declined request is declined again: asking it to go on would spend every turn on it
        if (response.stopReason === "refusal") {
          return yield* new Errors.ExecutorError({
            nodeId: node.id,
            message: `the model declined to write node ${node.id}'s code (stop reason refusal): another model (TREX_MODEL) or a reworded task objective may answer`,
            retryable: false
          })
        }
        const calls = Model.toolCalls(response)
        // cut off at maxTokens, the last call's input is incomplete (a script cut short): none is run
        if (response.stopReason === "max_tokens" && calls.length > 0) {
          messages.push({
            role: "user",
            content: calls.map((c): Model.ContentBlock => ({
              type: "tool_result",
              toolUseId: c.id,
              isError: true,
              content: `not run: your answer was cut off at the output limit (${maxTokens} tokens) before its calls were complete; ` +
                `make them shorter (split a long file into several, one call each)`
            }))
          })
          continue
        }
        if (calls.length === 0) {
          messages.push(Model.user("Continue with the tools; the session ends only when submit_training_job succeeds."))
          continue
        }
        const results: Array<Model.ContentBlock> = []
        for (const call of calls) {
          if (cancelled) return yield* emit({ _tag: "Finished", result: cancelledResult() })
          const out = yield* handle(call)
          if (out.final !== undefined) return yield* emit({ _tag: "Finished", result: out.final })
          results.push({ type: "tool_result", toolUseId: call.id, content: out.content, ...(out.isError ? { isError: true } : {}) })
        }
        messages.push({ role: "user", content: results })
      }
      const f = lastFailure.failure
      return yield* emit({
        _tag: "Finished",
        result: Result.failure(f?.kind ?? "Crash", `the code agent ran out of turns (${maxTurns}); last: ${f?.message ?? ""}`, {
          logTail: lastLogs
        })
      })
    }).pipe(
      Effect.catchTag("BackendError", (e) => Effect.fail(new Errors.ExecutorError({ nodeId: request.node.id, message: e.message, retryable: e.retryable }))),
      // its jobs are no longer its to cancel (a later session of the node may follow a job of the same id)
      Effect.ensuring(Effect.sync(() => followed.forEach((id) => cancels.get(id) === cancel && cancels.delete(id))))
    )
  }

  const run = (request: ExecutorAgent.ExecutionRequest): Stream.Stream<ExecutorAgent.ExecutionEvent, Errors.ExecutorError> =>
    Stream.callback<ExecutorAgent.ExecutionEvent, Errors.ExecutorError>((queue) =>
      session(request, (e) => Queue.offer(queue, e)).pipe(
        Effect.matchCauseEffect({ onSuccess: () => Queue.end(queue), onFailure: (cause) => Queue.failCause(queue, cause) }),
        Effect.forkScoped
      )
    )

  return {
    name: `code-agent(${model.model})`,
    run,
    // the session following the job ends with its exit; a job no session follows is cancelled all the same
    cancel: (job) => Effect.suspend(() => cancels.get(job.id) ?? Effect.ignore(backend.cancel(job)))
  } satisfies ExecutorAgent.ExecutorAgentShape
})

/**
 * The executor as a layer over the `Model` and `Backend` you provide.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { AnthropicModel, CodeAgentExecutor } from "@trex/agents"
 * const executor = CodeAgentExecutor.layer({ maxAttempts: 3 }).pipe(Layer.provide(AnthropicModel.layerConfig()))
 * ```
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<ExecutorAgent.ExecutorAgent, never, Model.Model | Backend.Backend> =>
  Layer.effect(ExecutorAgent.ExecutorAgent, make(options))

/**
 * With Claude from the environment ({@link AnthropicModel.layerConfig}); the `Backend` is yours.
 * @since 0.1.0 @category layers
 */
export const layerConfig = (options: Options = {}) => layer(options).pipe(Layer.provide(AnthropicModel.layerConfig()))
