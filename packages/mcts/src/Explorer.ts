/**
 * The exploration loop. `Explorer.run(task, options)` keeps up to `concurrency` experiments
 * in flight: select a node (policy, with virtual loss on pending trials) -> ask the researcher
 * for a child -> drop duplicates by fingerprint, reuse cached results -> admit against the
 * budget -> hand to the executor -> record progress and results -> backpropagate (the tree
 * fold) -> every k results distil insights -> stop on budget, target or stagnation.
 *
 * Every step is a journal event, so a killed run resumes where it stopped: the tree, the budget
 * and the researcher's analysis are rebuilt by replay (the analysis is never asked for twice),
 * and trials that were running are reattached, never resubmitted.
 * Randomness for the k-th proposal is seeded with `(seed, k)`, so with deterministic agents a
 * run is reproducible and a resumed run makes the same decisions as an uninterrupted one.
 *
 * @since 0.1.0
 */
import {
  Backend,
  Budget,
  Cost,
  CostMeter,
  ExecutorAgent,
  ExperimentNode,
  ExperimentTree,
  Fingerprint,
  Insight,
  Journal,
  JournalEvent,
  Researcher,
  Result,
  Scheduler,
  SearchPolicy,
  SearchSpace,
  Task
} from "@trex/core"
import { Errors, OptionSpec, Strategy, TaskFile } from "@trex/core"
import { Cause, Clock, Deferred, Duration, Effect, Exit, FiberMap, Option, Queue, Random, References, Schema, Semaphore, Stream } from "effect"
import type { Control } from "./Control.ts"
import { TrialTime } from "./internal/trialTime.ts"
import * as SameFailure from "./internal/sameFailure.ts"
import * as ResultCache from "./ResultCache.ts"

/** @since 0.1.0 @category models */
export interface Options {
  readonly runId: string
  /** Where job folders go (`<runDir>/jobs/<node>`). */
  readonly runDir: string
  readonly seed?: number
  /** Experiments in flight at once (default 1). */
  readonly concurrency?: number
  /** Distil insights after every k finished trials (default 5; 0 turns it off). */
  readonly distillEvery?: number
  /**
   * The run's budget, instead of the task's: of a new run (journaled with its task), or, when
   * resuming, from here on, instead of the one it had (journaled, so later resumes keep it).
   */
  readonly budget?: Budget.Budget
  /** Stop after this many finished trials without a new best (default: never); results reused from other runs are not trials. */
  readonly stagnation?: number
  /** Early stopping of running trials (default: the `Scheduler` service if one is provided, e.g. by `Asha.layer`, else none). */
  readonly scheduler?: Scheduler.SchedulerShape
  /** Results of other runs to reuse by fingerprint. */
  readonly cache?: ResultCache.ResultCache
  /** Pause, resume or stop from outside. */
  readonly control?: Control
  /**
   * Called after each event is folded (for UIs; must not block). Its journal commit may follow
   * a little later: events no outside effect depends on are committed in groups.
   */
  readonly onEvent?: (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => void
  /**
   * Times an execution that failed for infrastructure reasons is retried (default 2): a result whose
   * failure is retryable (`Infra`: a lost job, a full disk) or an executor error that is, after 2, 4,
   * 8... seconds (at most 30). A stop asked for during the wait ends it: the trial stays unfinished,
   * and a resumed run reattaches to its job (or submits it) and tries again.
   */
  readonly retries?: number
  /**
   * Stop the run when this many trials have failed the same way (the same kind, message and last
   * log line, ids and big numbers aside; `OOM`, `Timeout` and `Cancelled` never count, being the
   * strategy's) before any trial succeeded or was pruned: a setup error, not the strategies'; or,
   * once trials have worked, when twice as many finished one after another failing the same way
   * (a setup that broke under the run: a full disk, a path gone, an expired credential).
   * No new trial starts; the trials in flight finish (one that succeeds, or after trials worked fails
   * otherwise, lets the run go on), then `RunFinished` is journaled (the best so far kept) and the
   * run fails with `Errors.SetupFailure`. A resumed run runs the strategies of those trials again
   * (as new nodes, before anything new) and counts afresh.
   * Default 3; 0 turns it off (and a resumed run then runs none of them again).
   */
  readonly failFast?: number
  /** Proposal attempts per node before it counts as exhausted (default 3). */
  readonly proposalAttempts?: number
  /**
   * Times a researcher that fails to propose with a retryable `ResearcherError` (a model that is
   * down or overloaded, an answer that did not decode) is asked again before the run stops, after
   * the waits of `researcherRetryDelay` (default 3; `trex run --researcher-retries`). An error that
   * is not retryable (a refused key, a bug in the researcher) stops the run at once. A stop for
   * this reason journals no exhaustion: a resumed run asks again.
   */
  readonly researcherRetries?: number
  /**
   * The wait before a researcher that failed retryably is asked again the first time (default 2
   * seconds; a number is milliseconds), doubled each time after, none longer than 60 seconds (or
   * than the first wait, when that is longer): 2, 4, 8 s by default. `trex run --researcher-retry-delay`.
   *
   * @example
   * ```ts
   * // a flaky local model: ask again five times, after 0.5, 1, 2, 4 and 8 seconds
   * const options = { runId: "r1", runDir: "trex-runs/r1", researcherRetries: 5, researcherRetryDelay: "500 millis" }
   * ```
   */
  readonly researcherRetryDelay?: Duration.Input
  /** Recorded in `RunStarted` (the CLI flags, say). */
  readonly recorded?: Record<string, Schema.Json>
  /**
   * A resumed run's settings that replace those `recorded` when it started, from here on: journaled in its
   * `RunResumed` (`settings`), for the caller to read back (`trex resume` records a setting given for one the
   * run recorded out of bounds). Ignored by a new run.
   */
  readonly resumedSettings?: Record<string, Schema.Json>
  /**
   * The journal's entries as the caller already read them (seq 1, 2, 3, ... in order: a prefix of
   * the journal, which only grows), to resume without reading them again: the replay reads only
   * the entries after them. `trex resume` reads a run before it resumes it, and reading a
   * 50,000-trial journal twice more cost seconds before the first new trial.
   */
  readonly journaled?: ReadonlyArray<JournalEvent.Entry>
}

/** How a run ended. @since 0.1.0 @category models */
export interface Summary {
  readonly runId: string
  readonly reason: string
  readonly tree: ExperimentTree.TreeView
  readonly best: ExperimentTree.NodeView | undefined
  readonly usage: Budget.Usage
  /** Whether the run was interrupted (killed or stopped with "cancel") rather than finished. */
  readonly interrupted: boolean
}

type Wake = { readonly _tag: "Finished"; readonly nodeId: string } | { readonly _tag: "Control" }

/** What the loop needs from the context. @since 0.1.0 @category models */
export type Requirements = Journal.Journal | SearchPolicy.SearchPolicy | Researcher.Researcher | ExecutorAgent.ExecutorAgent

/**
 * Run (or resume) a search. A journal that already holds this run is replayed and continued. A new
 * run (an empty journal) whose task's default strategy lies outside its search space fails at once
 * with the `InvalidInput` a task file gets for it (`TaskFile.defaultStrategyIssues`), nothing
 * journaled; a journal's own task is taken as it is, so a run journaled before that check resumes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Explorer } from "@trex/mcts"
 * declare const task: import("@trex/core").Task.Task
 * const program = Explorer.run(task, { runId: "r1", runDir: "trex-runs/r1", concurrency: 2, seed: 7 })
 * ```
 * @since 0.1.0 @category running
 */
export const run = (task: Task.Task, options: Options): Effect.Effect<Summary, Error, Requirements> => {
  const wrong = checkOptions(options) ?? strictWithoutLimit(task, options)
  if (wrong !== undefined) return Effect.fail(wrong)
  // the entries given are handed over once, not kept with the options: the replay lets go of them
  // (a resumed run's earlier entries are not held for the whole session)
  const { journaled, ...rest } = options
  const given: Given = { entries: journaled }
  return Effect.suspend(() => Effect.scoped(runTraced(task, rest, given)))
}

/** A resumed run's entries the caller read already, taken once by the replay (then read from the journal). */
interface Given {
  entries: ReadonlyArray<JournalEvent.Entry> | undefined
}

/**
 * How a run fails: its journal cannot be read or written (or belongs to another run), its options
 * are invalid, or its policy answered what cannot be done; or its trials all failed the same way
 * before any succeeded, or one after another after some did (`SetupFailure`, see
 * `Options.failFast`: the run is finished, its best kept, and resumable once its setup is
 * mended). Trials that fail otherwise, and researchers that fail, do not fail the run.
 * @since 0.1.0 @category models
 */
export type Error = Errors.JournalError | Errors.InvalidInput | Errors.PolicyError | Errors.SetupFailure

/**
 * How the reason of a run begins when its researcher kept failing (`the researcher failed: <its
 * error>`): nothing was marked exhausted, and a resume asks it again.
 * @since 0.1.0 @category models
 */
export const RESEARCHER_FAILED = JournalEvent.RESEARCHER_FAILED

/** The reason of a run stopped by `Control.stop` (Ctrl-C, `trex stop`) with trials in flight. @since 0.1.0 @category constants */
export const STOPPED_BY_REQUEST = JournalEvent.STOPPED_BY_REQUEST

/**
 * How the reason of a run begins when its trials all failed the same way (see `Options.failFast`):
 * a resume after the setup is mended runs their strategies again.
 * @since 0.1.0 @category models
 */
export const SAME_FAILURE = SameFailure.SAME_FAILURE

/**
 * How the reason of a run begins when, after trials had worked, its latest trials failed the same
 * way one after another (see `Options.failFast`): a resume after the setup is mended runs their
 * strategies again.
 * @since 0.1.0 @category models
 */
export const SAME_FAILURE_SINCE = SameFailure.SAME_FAILURE_SINCE

/**
 * How the reason of a run begins when a trial failed on the executor's own settings, which the
 * service it calls refused (`Result.Failure.setup`: an API key, its permissions, a model name): the
 * run stops at that trial, as for trials that failed alike (a `SetupFailure`), and a resumed run
 * runs its strategy again.
 * @since 0.1.0 @category models
 */
export const SETTINGS_REFUSED = SameFailure.SETTINGS_REFUSED

/** What each option takes. */
const OPTIONS: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  runId: OptionSpec.required(OptionSpec.nonEmptyString()),
  runDir: OptionSpec.required(OptionSpec.nonEmptyString("where job folders go")),
  seed: OptionSpec.integer(Number.MIN_SAFE_INTEGER, "the run's seed"),
  concurrency: OptionSpec.integer(1, "trials in flight at once"),
  distillEvery: OptionSpec.integer(0, "0 turns distillation off"),
  budget: OptionSpec.schema(Budget.Budget),
  stagnation: OptionSpec.integer(1, "trials without a new best"),
  scheduler: OptionSpec.fn("decide"),
  cache: OptionSpec.fn("lookup"),
  control: OptionSpec.fn("onChange"),
  onEvent: OptionSpec.fn(),
  retries: OptionSpec.integer(0, "retries of a trial that failed for infrastructure reasons"),
  failFast: OptionSpec.integer(0, "trials failed the same way, none succeeded (twice as many in a row after some did), before the run stops; 0 turns it off"),
  proposalAttempts: OptionSpec.integer(1, "tries per node before it counts as exhausted"),
  researcherRetries: OptionSpec.integer(0, "asks again of a researcher that failed"),
  researcherRetryDelay: {
    issues: (v, path) => Researcher.retryDelayMillis(v) !== undefined ? [] : [Researcher.retryDelayIssue(path, v, "a duration", `"2 seconds" or 500 (milliseconds)`)]
  },
  recorded: OptionSpec.unchecked,
  resumedSettings: OptionSpec.unchecked,
  journaled: OptionSpec.refine(OptionSpec.unchecked, (v) => (Array.isArray(v) ? undefined : `a list of journal entries, got ${OptionSpec.show(v)}`))
}

/** The options' issues, each naming its field and what it takes, or `undefined` when they are sound. */
const checkOptions = (options: Options): Errors.InvalidInput | undefined => OptionSpec.check("Explorer.run", OPTIONS, options)

/** A strict budget (the task's, or `options.budget`) holds each trial at its time limit's worth: it needs one. */
const strictWithoutLimit = (task: Task.Task, options: Options): Errors.InvalidInput | undefined => {
  const issue = Task.strictWithoutLimit(task, options.budget)
  return issue === undefined ? undefined : new Errors.InvalidInput({ source: "budget.strict", message: `budget.strict ${issue}` })
}

/**
 * A new run's default strategy outside its search space, as `TaskFile.decode` words it (each field,
 * its value, the values allowed and the fix): the baseline would run it as written, and the trials
 * that start from it keep it until a move changes it.
 */
const defaultOutside = (task: Task.Task): Errors.InvalidInput | undefined => {
  if (task.searchSpace === undefined || task.defaultStrategy === undefined) return undefined
  const issues = TaskFile.defaultStrategyIssues(task.searchSpace, task.defaultStrategy)
  return issues.length === 0 ? undefined : new Errors.InvalidInput({
    source: "task",
    message: `invalid task in Explorer.run's task (${task.name}), for a new run:\n${issues.join("\n")}`
  })
}

/** The journal's entries: those the caller read already (taken from `given`, once), then the rest read. */
const readJournal = (journal: Journal.Journal["Service"], given: Given) =>
  Effect.suspend(() => {
    const entries = given.entries
    given.entries = undefined
    const prefix = entries !== undefined && entries.length > 0 && entries.every((e, i) => e.seq === i + 1) ? entries : undefined
    return prefix !== undefined ? Effect.map(journal.read(prefix.length + 1), (rest) => prefix.concat(rest)) : journal.read(1)
  })

/**
 * The run, in a span named `Explorer.run`. Its agents are given the run's cost meter once, for the
 * whole run, and its fibers carry no stack frame: with one, every failure the runtime creates is
 * annotated with a copy of it, and a stream signals its end by such a failure (several per trial).
 */
const runTraced = Effect.fn("Explorer.run")(function*(task: Task.Task, options: Omit<Options, "journaled">, given: Given) {
  const meter: { current?: CostMeter.CostMeterShape } = {}
  return yield* runScoped(task, options, meter, given).pipe(
    Effect.provideService(CostMeter.CostMeter, {
      record: (cost, reason) => Effect.suspend(() => meter.current!.record(cost, reason))
    }),
    Effect.provideService(References.CurrentStackFrame, undefined)
  )
})

const runScoped = Effect.fnUntraced(function*(task: Task.Task, options: Omit<Options, "journaled">, runMeter: { current?: CostMeter.CostMeterShape }, given: Given) {
  const journal = yield* Journal.Journal
  const policy = yield* SearchPolicy.SearchPolicy
  const researcher = yield* Researcher.Researcher
  const executor = yield* ExecutorAgent.ExecutorAgent
  const concurrency = options.concurrency ?? 1
  const distillEvery = options.distillEvery ?? 5
  const attempts = options.proposalAttempts ?? 3
  const researcherRetries = options.researcherRetries ?? 3
  const researcherRetryDelay = Researcher.retryDelayMillis(options.researcherRetryDelay ?? "2 seconds")!
  const scheduler = options.scheduler ?? Option.getOrUndefined(yield* Effect.serviceOption(Scheduler.Scheduler)) ?? Scheduler.none
  const cache = options.cache ?? ResultCache.empty

  // ---- replay ---------------------------------------------------------------------------
  // entries the caller read already (a prefix of the journal, numbered from 1) are not read again;
  // all of them are let go of once replayed (below), so a long run does not hold its earlier sessions' entries
  let existing: ReadonlyArray<JournalEvent.Entry> | undefined = yield* readJournal(journal, given)
  const resumed = existing.length > 0
  const first = existing[0]?.event
  if (resumed && first?._tag !== "RunStarted") {
    return yield* new Errors.JournalError({ reason: "Corrupt", seq: 1, message: `the journal does not begin with RunStarted (it begins with ${first?._tag}): it is not a run's journal` })
  }
  if (first?._tag === "RunStarted" && first.runId !== options.runId) {
    return yield* new Errors.JournalError({
      reason: "Mismatch",
      message: `the journal holds run "${first.runId}", not "${options.runId}": pass runId "${first.runId}" to resume it, or give a new run a journal of its own`
    })
  }
  // A new run's default strategy must lie in its search space (as a task file's must when it is read);
  // a journal's task is taken as it is, so that a run journaled before that check still resumes.
  const outside = resumed ? undefined : defaultOutside(task)
  if (outside !== undefined) return yield* outside
  const seed = first?._tag === "RunStarted" ? first.seed : options.seed ?? 0
  const tree = resumed
    ? ExperimentTree.fold(existing.map((e) => e.event))!
    : ExperimentTree.ExperimentTree.empty(options.budget !== undefined ? { ...task, budget: options.budget } : task, options.runId, seed)
  // the recorded task with the budget a resume set last (the fold applies them), or the one this resume sets
  const newBudget = resumed && options.budget !== undefined ? options.budget : undefined
  const runTask = newBudget !== undefined ? { ...tree.task, budget: newBudget } : tree.task
  // the task's prices, decoded once (every admission may price a trial's time limit)
  const runPricing = Backend.pricingOf(runTask.backend)
  // What the loop counts, as of the journal, so a resumed run carries on as the uninterrupted one.
  const replayed = progressOf(existing, runTask)
  // The budget as of the journal: the ledger, the time the run was active, and how long trials took
  // on its wall clock (admission expects a trial to take their mean).
  const { ledger, priorElapsed, trialTime } = replayBudget(existing, runTask)
  // The summed cost of the trials that reported one, and their number: admission estimates a trial
  // by their mean (when the recipe declares no larger estimate).
  let trialCost = replayed.trialCost
  let trialsCosted = replayed.trialsCosted
  // for the stagnation rule: results reused from other runs, which are not trials run
  let reusedCount = replayed.reused
  // Trials that all failed the same way (a setup error): the stop's count and, after such a stop,
  // the strategies a resumed run runs again, as of the journal.
  const sameFailures = new SameFailure.SameFailures(options.failFast ?? 3, (id) => tree.view.get(id))
  for (const { event } of existing) sameFailures.apply(event)

  // ---- recording: fold and notify at once, journal with a group commit --------------------
  // Events are folded in the order they are recorded and appended in that order, so the journal
  // is always a prefix of what happened. Events that no outside effect depends on (a submission,
  // a finish, a distillation) wait for the next commit: before the next job is submitted, before
  // the loop waits, at the end, or at most `GROUP_COMMIT` later. A crash loses at most those, and
  // a resumed run recovers them as after any crash: a running node is reattached, a node
  // admitted without a submission on record is reconciled with the backend.
  const lock = yield* Semaphore.make(1)
  let seq = existing.length
  let buffered: Array<JournalEvent.JournalEvent> = []
  let commitScheduled = false
  const commit: Effect.Effect<void, Errors.JournalError> = lock.withPermits(1)(
    Effect.suspend(() => {
      if (buffered.length === 0) return Effect.void
      const events = buffered
      buffered = []
      return Effect.asVoid(journal.append(events))
    })
  )
  const scope = yield* Effect.scope
  const commitSoon = Effect.suspend(() => {
    if (commitScheduled) return Effect.void
    commitScheduled = true
    return Effect.asVoid(
      Effect.forkIn(
        Effect.sleep(GROUP_COMMIT).pipe(
          Effect.andThen(Effect.sync(() => (commitScheduled = false))),
          Effect.andThen(commit),
          Effect.orDie
        ),
        scope
      )
    )
  })
  // The caller's onEvent is its own code: a throw there is reported once and the run goes on (it
  // is not a failure of the trial, nor of the run, whose event is journaled all the same).
  let onEventThrew = false
  /** Fold and notify now; journal now (`"now"`) or with the next commit (`"soon"`). */
  const record = (events: ReadonlyArray<JournalEvent.JournalEvent>, when: "now" | "soon" = "now") =>
    Effect.suspend(() => {
      let thrown: { readonly tag: string; readonly error: unknown } | undefined
      for (const e of events) {
        buffered.push(e)
        seq++
        if (e._tag !== "RunStarted") tree.apply(e)
        trialTime.apply(e)
        sameFailures.apply(e)
        if (options.onEvent !== undefined) {
          try {
            options.onEvent({ seq, event: e }, tree.view)
          } catch (error) {
            if (!onEventThrew) thrown ??= { tag: e._tag, error }
          }
        }
      }
      const then = when === "now" ? commit : commitSoon
      if (thrown === undefined) return then
      onEventThrew = true
      return Effect.andThen(
        Effect.logWarning(`the onEvent callback threw on ${thrown.tag}; the run goes on (mend the callback; later throws are not reported): ${defectMessage(thrown.error)}`),
        then
      )
    })
  // Read once: the loop stamps several events per trial, without an effect for each.
  const clock = yield* Clock.Clock
  const nowMs = () => clock.currentTimeMillisUnsafe()
  const now = Effect.sync(nowMs)

  const started = yield* now
  if (resumed) {
    yield* record([JournalEvent.make("RunResumed", {
      at: started,
      ...(newBudget !== undefined ? { budget: newBudget } : {}),
      ...(options.resumedSettings !== undefined && Object.keys(options.resumedSettings).length > 0 ? { settings: options.resumedSettings } : {})
    })])
  } else {
    yield* record([
      JournalEvent.make("RunStarted", { runId: options.runId, task: runTask, seed, options: options.recorded ?? {}, at: started })
    ])
  }
  const updateElapsed = () => ledger.setElapsed((priorElapsed + nowMs() - started) / 1000)

  // Model calls made by agents are charged to the budget and journaled.
  const meter: CostMeter.CostMeterShape = {
    record: (cost, reason) =>
      Effect.suspend(() => {
        ledger.charge(cost)
        return Effect.flatMap(now, (at) => record([JournalEvent.make("BudgetCharged", { cost, reason, at })]))
      }).pipe(Effect.orDie)
  }
  runMeter.current = meter

  const control = options.control
  /**
   * `self`, unless a stop is requested first: then `undefined`, and `self` is interrupted. A
   * researcher's call (a model that does not answer) never holds a stop up; what it would have
   * given is dropped, and a resumed run asks again.
   */
  const unlessStopped = <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A | undefined, E> =>
    control === undefined ? self : Effect.raceFirst(self, stopRequested)
  const stopRequested = Effect.callback<undefined>((resume) => {
    if (control!.stopRequested !== undefined) return resume(Effect.undefined)
    const unsubscribe = control!.onChange(() => {
      if (control!.stopRequested !== undefined) resume(Effect.undefined)
    })
    return Effect.sync(unsubscribe)
  })

  // ---- execution of one node ---------------------------------------------------------------
  const wake = yield* Queue.unbounded<Wake>()
  const fibers = yield* FiberMap.make<string, void, Errors.JournalError>()
  const inFlight = new Set<string>()
  let finishedCount = 0
  /** Trials a scheduler pruned, and why (journaled with the node's end). */
  const pruning = new Map<string, string>()
  /** Completed when the trial is pruned: its stream is then stopped (at once, or after PRUNE_GRACE once its job is cancelled). */
  const prunes = new Map<string, Deferred.Deferred<Duration.Duration>>()
  /** A scheduler that threw: the run fails with this once the trials in flight have finished. */
  let schedulerFailed = undefined as Errors.PolicyError | undefined
  // Withdrawn through the executor when it can do so in one step (a job that has just left the queue
  // is then let run), else by stopping the trial (which cancels its job).
  // A trial's withdraw is asked once at a time: one that waits for its backend (a scheduler that does not
  // answer) is not asked again by each `Pending` the trial reports meanwhile (its wait's reason changing).
  const withdrawing = new Set<string>()
  const withdraw = (nodeId: string): Effect.Effect<void, Errors.JournalError> =>
    Effect.suspend(() => {
      if (withdrawing.has(nodeId)) return Effect.void
      withdrawing.add(nodeId)
      return Effect.ensuring(withdrawOnce(nodeId), Effect.sync(() => void withdrawing.delete(nodeId)))
    })
  const withdrawOnce = (nodeId: string) =>
    Effect.suspend(() => {
      const n = tree.view.get(nodeId)
      const job = n?.state._tag === "Running" ? n.state.job : undefined
      const asked = executor.withdraw
      // a withdraw that throws or dies is a bug in the executor: its trial is stopped, as without a withdraw (it runs on resume)
      const gone = asked !== undefined && job !== undefined
        ? Effect.suspend(() => asked(job)).pipe(Effect.catchDefect((defect) =>
          Effect.as(
            Effect.logError(
              `trial ${nodeId}: executor "${executor.name}" failed unexpectedly to withdraw its job (a bug in it): ${defectMessage(defect)}; the trial is stopped as without a withdraw, and runs on resume`,
              defect
            ),
            true
          )
        ))
        : Effect.succeed(true)
      // journaled once its job is gone (the trial's stream stopped, its job cancelled): a resumed run submits it afresh
      return Effect.flatMap(gone, (withdrawn) => {
        // (once: a trial asked twice, by the drain and by its own late `Pending`, is no longer in flight the second time)
        if (!withdrawn || !inFlight.has(nodeId)) return Effect.void
        return Effect.andThen(FiberMap.remove(fibers, nodeId), record([JournalEvent.make("JobState", { nodeId, state: "Withdrawn", at: nowMs() })], "soon"))
      })
    })

  /**
   * Stop a trial a scheduler pruned: the decision is journaled at once (a resumed run does not run
   * the trial again), then its job is cancelled through the executor and its stream let report the
   * cost it ran up, for a grace; without the executor's `cancel`, or without a job, the stream is
   * stopped at once.
   */
  const prune = (nodeId: string, reason: string) =>
    Effect.suspend(() => {
      pruning.set(nodeId, reason)
      return Effect.andThen(record([JournalEvent.make("JobState", { nodeId, state: "Pruning", reason, at: nowMs() })], "now"), stopPruned(nodeId))
    })
  /** Cancel a pruned trial's job, and stop its stream (after PRUNE_GRACE when the job was cancelled, else at once). */
  const stopPruned = (nodeId: string) =>
    Effect.suspend(() => {
      const n = tree.view.get(nodeId)
      const job = n?.state._tag === "Running" ? n.state.job : undefined
      const cancel = executor.cancel !== undefined && job !== undefined ? executor.cancel(job) : undefined
      const pruned = prunes.get(nodeId)
      if (pruned !== undefined) Deferred.doneUnsafe(pruned, Exit.succeed(cancel !== undefined ? PRUNE_GRACE : Duration.zero))
      return cancel !== undefined ? Effect.asVoid(Effect.forkIn(cancel, scope)) : Effect.void
    })

  const finish = (nodeId: string, outcome: JournalEvent.Outcome, result: Result.Result | undefined, reason?: string) =>
    Effect.suspend(() => {
      const at = nowMs()
      const events: Array<JournalEvent.JournalEvent> = []
      if (result !== undefined && hasCost(result.cost)) {
        // a pruned trial's cost is charged, but the estimate of the next trial (which may run to its end) is the mean of whole trials
        const whole = outcome !== "Pruned"
        events.push(JournalEvent.make("BudgetCharged", { nodeId, cost: result.cost, reason: whole ? "trial" : PRUNED_TRIAL, at }))
        ledger.charge(result.cost)
        if (whole) {
          trialCost = Cost.add(trialCost, result.cost)
          trialsCosted++
        }
      }
      events.push(
        JournalEvent.make("NodeFinished", {
          nodeId,
          outcome,
          at,
          ...(result !== undefined ? { result } : {}),
          ...(reason !== undefined ? { reason } : {})
        })
      )
      ledger.release(nodeId, result?.reusedFrom !== undefined)
      // a stopped trial's job was cancelled: journal that at once (a reattachment would run it afresh)
      return record(events, outcome === "Succeeded" || outcome === "Failed" ? "soon" : "now")
    })

  // a trial reattached on resume is told every job journaled for it (a code agent counts its training attempts by them)
  const resumedJobs = journaledJobs(existing)
  // every job on record for a trial not finished (withdrawn ones too), and those it reports in this session: a
  // reconciling attempt never adopts one of them (followed already); dropped when the trial ends
  const recordedJobs = journaledJobs(existing, true)
  existing = undefined
  const retries = options.retries ?? 2
  // Said once per node and job: a reconciling attempt reported a job that is on record (`onRecord`). An executor
  // written when `reconcile` meant only "no submission on record" may adopt the node's first listed job, which on a
  // retry after a reattached job failed is that failed job: its end is read again, its failure the node's once more.
  // Not said for the backends that give a node's next job the id of its last (the local backend's directory, an SSH
  // host's) or count ids afresh in each controller (the simulator): there a job submitted afresh may have an id on record.
  const warnedOnRecord = new Set<string>()
  /**
   * Backends whose fresh submit may report an id on record: the local backend's and an SSH host's next job of a node
   * has the id of its last (the node's directory), and the simulator counts its ids from 1 again in each controller.
   */
  const REUSES_JOB_IDS: ReadonlySet<string> = new Set(["local", "ssh", "simulator"])
  const adoptedOnRecord = (nodeId: string, job: ExperimentNode.JobRef, onRecord: ReadonlyArray<ExperimentNode.JobRef>) => {
    const key = `${nodeId}\u0000${job.backend}\u0000${job.id}`
    if (REUSES_JOB_IDS.has(job.backend) || !onRecord.some((j) => j.backend === job.backend && j.id === job.id) || warnedOnRecord.has(key)) return Effect.void
    warnedOnRecord.add(key)
    return Effect.logWarning(
      `trial ${nodeId}: executor "${executor.name}", reconciling, reported job ${job.id} (${job.backend}), which is on record already: it adopted a job ` +
        `that was followed before (on a retry after a reattached job failed, that failed job), whose end is read again. An executor that looks ` +
        `for the node's jobs (Backend.list) must never adopt one in request.onRecord: see ExecutorAgent.ExecutionRequest.reconcile`
    )
  }
  const execute = (
    node: ExperimentNode.NodeSpec,
    job: ExperimentNode.JobRef | undefined,
    reconcile: boolean,
    elsewhere?: string
  ): Effect.Effect<void, Errors.JournalError> => {
    // Reconciling (a trial admitted before a crash, no submission on record): every attempt looks for
    // its job on the backend until one reports a submission. An attempt that failed before that (the
    // backend could not list its jobs) has not looked, and a retry that submitted without looking
    // could start a second copy beside one it could not see.
    let reconciling = reconcile
    // One attempt: run the executor's stream to its end, then finish the node or try again.
    const attempt = (tries: number, reattach: ExperimentNode.JobRef | undefined): Effect.Effect<void, Errors.JournalError> => {
      const onRecord = reattach !== undefined || reconciling ? [...(recordedJobs.get(node.id) ?? [])] : undefined
      // a reconciling attempt that reports a job on record adopted one it must not (see `adoptedOnRecord`)
      const looking = reconciling && onRecord !== undefined
      return executor
        .run({
          task: runTask,
          runId: options.runId,
          runDir: options.runDir,
          node,
          attempt: tries,
          ...(reconciling ? { reconcile: true } : {}),
          ...(reattach !== undefined ? { job: reattach, jobs: resumedJobs.get(node.id) ?? [reattach] } : {}),
          ...(onRecord !== undefined ? { onRecord } : {})
        })
        .pipe(
          // a prune cancels the job and lets the stream end with its cost; one that does not end in time is stopped
          // (without a scheduler nothing is pruned: no watch on the trial, which costs a fiber per trial)
          (stream) => pruned === undefined ? stream : Stream.interruptWhen(stream, Effect.flatMap(Deferred.await(pruned), Effect.sleep)),
          Stream.runFoldEffect(
            () => undefined as Result.Result | undefined,
            (acc, ev) => {
              if (ev._tag === "Finished") return checkedResult(ev.result, node.id)
              const warned = ev._tag === "Submitted" && looking ? adoptedOnRecord(node.id, ev.job, onRecord!) : Effect.void
              if (ev._tag === "Submitted") {
                reconciling = false
                // (kept for a trial resumed with jobs on record only: none other reconciles after it has submitted)
                recordedJobs.get(node.id)?.push(ev.job)
              }
              if (ev._tag === "Progress") return Effect.as(Effect.flatMap(checkedProgress(ev, node.id), (checked) => onExecutionEvent(node.id, checked)), acc)
              return Effect.as(Effect.andThen(warned, onExecutionEvent(node.id, ev)), acc)
            }
          ),
          Effect.matchEffect({
            onFailure: (e) =>
              e._tag !== "ExecutorError" ? Effect.fail(e)
              : pruning.has(node.id) ? finish(node.id, "Pruned", undefined, pruning.get(node.id))
              : failedAttempt(tries, e, reattach),
            onSuccess: (result) => {
              // pruned: its job was cancelled (or its stream stopped); one that finished first keeps its result
              if (pruning.has(node.id) && (result === undefined || result.failure?.kind === "Cancelled")) return finish(node.id, "Pruned", result, pruning.get(node.id))
              if (result === undefined) return failedAttempt(tries, undefined, reattach)
              // A job we reattached to had been cancelled by an earlier stop: run it afresh.
              if (reattach !== undefined && result.failure?.kind === "Cancelled" && tries === 0) return attempt(tries + 1, undefined)
              // A retryable failure (the backend lost the job, or it never started; a full disk) runs again,
              // bounded, after a backoff: what failed it may take a while to pass.
              if (result.failure?.retryable === true && tries < retries && !pruning.has(node.id)) return retryAfterBackoff(tries, reattach)
              const failed = result.failure !== undefined || result.score === undefined
              return finish(node.id, failed ? "Failed" : "Succeeded", failedIfUnscored(result, runTask))
            }
          })
        )
    }
    /**
     * Attempt `tries + 1`, after 2, 4, 8... seconds (at most 30). A stop asked for meanwhile ends the
     * wait and the trial, unfinished (it starts no job during a drain): a resumed run reattaches to
     * its last job, reads its failure, and tries again; one that never submitted is submitted.
     */
    const retryAfterBackoff = (tries: number, reattached: ExperimentNode.JobRef | undefined): Effect.Effect<void, Errors.JournalError> =>
      Effect.flatMap(unlessStopped(Effect.as(Effect.sleep(retryDelay(tries)), true)), (waited) =>
        waited === true && control?.stopRequested === undefined
          ? Effect.suspend(() => {
            // A job reattached on resume that failed (lost, say) may have been retried before the crash, the
            // retry's job submitted but not yet on record: the retry looks for it (never submits beside it).
            if (reattached !== undefined) reconciling = true
            return attempt(tries + 1, undefined)
          })
          : Effect.void)
    // The executor failed (or its stream ended without a result): a retryable error runs again after a backoff.
    const failedAttempt = (
      tries: number,
      error: Errors.ExecutorError | undefined,
      reattached: ExperimentNode.JobRef | undefined
    ): Effect.Effect<void, Errors.JournalError> =>
      error !== undefined && error.retryable && tries < retries
        ? retryAfterBackoff(tries, reattached)
        : finish(
          node.id,
          "Failed",
          Result.failure(
            "Infra",
            error?.message ??
              `executor "${executor.name}" ended the trial's stream without a result (with a backend: its watch ended before the job's Exit)`,
            { retryable: error?.retryable ?? false, setup: error?.setup === true }
          )
        )
    const pruned = scheduler === Scheduler.none && !pruning.has(node.id) ? undefined : Deferred.makeUnsafe<Duration.Duration>()
    if (pruned !== undefined) prunes.set(node.id, pruned)
    // (another run running the same strategy: its result is waited for first; a drain stops the wait)
    const first = elsewhere === undefined ? Effect.suspend(() => attempt(0, job)) : Effect.suspend(() => {
      waitingElsewhere.add(node.id)
      return Effect.flatMap(
        Effect.ensuring(awaitElsewhere(node, elsewhere), Effect.sync(() => waitingElsewhere.delete(node.id))),
        (reused) => (reused ? Effect.void : attempt(0, job))
      )
    })
    return first.pipe(
      // a defect in the executor or its backend (a bug: a stream that dies, a throw) fails this trial, loudly, not the run
      Effect.catchDefect((defect) => {
        const message = `executor "${executor.name}" failed unexpectedly (a bug in it or its backend): ${defectMessage(defect)}`
        return Effect.andThen(
          Effect.logError(`trial ${node.id}: ${message}`, defect),
          finish(node.id, "Failed", Result.failure("Infra", message, { retryable: false }))
        )
      }),
      // a run cancelled while a pruned trial's job reports its end: it stays pruned (a resumed run does not run it again)
      Effect.onInterrupt(() => pruning.has(node.id) ? finish(node.id, "Pruned", undefined, pruning.get(node.id)).pipe(Effect.orDie) : Effect.void),
      Effect.ensuring(
        Effect.suspend(() => {
          inFlight.delete(node.id)
          prunes.delete(node.id)
          recordedJobs.delete(node.id)
          return Queue.offer(wake, { _tag: "Finished", nodeId: node.id })
        })
      )
    )
  }

  // An executor of one's own may report what the journal cannot hold (a diverged loss as NaN, an
  // infinite cost): journaled, it failed the run's commit, and the run, with an error naming no trial.
  // Said once per trial.
  const warnedOutput = new Set<string>()
  const warnOutput = (nodeId: string, what: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (warnedOutput.has(nodeId)) return Effect.void
      warnedOutput.add(nodeId)
      return Effect.logWarning(`trial ${nodeId}: executor "${executor.name}" reported ${what}`)
    })
  /** A progress report's points the journal can hold: one whose value is not a finite number (NaN, Infinity) is left out. */
  const checkedProgress = (
    ev: Extract<ExecutorAgent.ExecutionEvent, { _tag: "Progress" }>,
    nodeId: string
  ): Effect.Effect<ExecutorAgent.ExecutionEvent> => {
    const kept = ev.metrics.filter((m) => isMetricPoint(m))
    const badFraction = ev.fraction !== undefined && !Number.isFinite(ev.fraction)
    if (kept.length === ev.metrics.length && !badFraction) return Effect.succeed(ev)
    const bad = ev.metrics.find((m) => !kept.includes(m))
    const { fraction, ...rest } = ev
    return Effect.as(
      warnOutput(nodeId, `${bad !== undefined ? `${bad.name} = ${bad.value} at step ${bad.step}` : `fraction ${fraction}`}, not a finite number: left out of its progress`),
      { ...rest, metrics: kept, ...(badFraction ? {} : { fraction }) }
    )
  }
  /** A result the journal can hold; one it cannot (a score of NaN, say) fails the trial as `InvalidOutput`, naming the field. */
  const checkedResult = (result: Result.Result, nodeId: string): Effect.Effect<Result.Result> => {
    if (isResult(result)) return Effect.succeed(result)
    const issues = oneLine(decodeResult(result))
    const message = `executor "${executor.name}" reported a result the journal cannot hold (${issues}): a value that is not a finite number fails its trial`
    return Effect.as(warnOutput(nodeId, message), Result.failure("InvalidOutput", message, isCost(result.cost) ? { cost: result.cost } : {}))
  }

  const onExecutionEvent = (nodeId: string, ev: ExecutorAgent.ExecutionEvent): Effect.Effect<void, Errors.JournalError> => {
    switch (ev._tag) {
      case "Submitted":
        return Effect.suspend(() => record([JournalEvent.make("JobSubmitted", { nodeId, job: ev.job, at: nowMs() })], "soon"))
      case "Progress":
        return Effect.flatMap(
          Effect.suspend(() =>
            record(
              [
                JournalEvent.make("JobProgress", {
                  nodeId,
                  metrics: ev.metrics,
                  at: nowMs(),
                  ...(ev.fraction !== undefined ? { fraction: ev.fraction } : {}),
                  ...(ev.message !== undefined ? { message: ev.message } : {})
                })
              ],
              "soon"
            )
          ),
          // decided on the tree with this progress folded in
          () => {
            if (ev.metrics.length === 0 || pruning.has(nodeId) || schedulerFailed !== undefined) return Effect.void
            let decision: Scheduler.Decision
            try {
              decision = scheduler.decide(tree.view, nodeId, ev.metrics)
            } catch (defect) {
              // a bug in the scheduler is its own, not the trial's (which goes on): nothing is pruned from
              // now on, no new trial starts, and the run fails once the trials in flight have finished
              schedulerFailed = new Errors.PolicyError({
                policy: scheduler.name,
                message: `scheduler ${scheduler.name} failed unexpectedly (a bug in it): ${defectMessage(defect)}`
              })
              return Effect.andThen(
                Effect.logError(`trial ${nodeId}: ${schedulerFailed.message} (the run stops once the trials in flight finish)`, defect),
                Queue.offer(wake, { _tag: "Control" })
              )
            }
            return decision === "prune" ? prune(nodeId, prunedBecause(scheduler.name, ev.metrics)) : Effect.void
          }
        )
      case "State":
        // Journaled when a wait starts, its reason changes or it ends, as the tree knows it (a resumed
        // run's too: a job that started while no controller ran); a job that never waits journals none.
        // So is a running job's loss of touch with its backend (a `Running` with a reason), and its end.
        return Effect.suspend(() => {
          const view = tree.view.get(nodeId)
          const journaled = view?.waiting
          if (ev.state === "Running") {
            if (ev.reason !== undefined) {
              return view?.unreachable === ev.reason ? Effect.void : record([JournalEvent.make("JobState", { nodeId, state: "Running", reason: ev.reason, at: nowMs() })], "soon")
            }
            return journaled === undefined && view?.unreachable === undefined
              ? Effect.void
              : record([JournalEvent.make("JobState", { nodeId, state: "Running", at: nowMs() })], "soon")
          }
          const changed = journaled !== (ev.reason ?? ExperimentNode.UNSPECIFIED_WAIT)
          const told = changed
            ? record([JournalEvent.make("JobState", { nodeId, state: "Pending", ...(ev.reason !== undefined ? { reason: ev.reason } : {}), at: nowMs() })], "soon")
            : Effect.void
          // waiting after a drain began (submitted late, or resubmitted by a retry): withdrawn as well
          return options.control?.stopRequested === "drain" ? Effect.andThen(told, Effect.forkDetach(withdraw(nodeId))) : told
        })
      default:
        return Effect.void
    }
  }

  /**
   * A strategy another run is running now (a run beside this one in the same folder): its result is
   * waited for and reused, rather than the same strategy run twice at once. `true` once reused;
   * `false` when that run's trial ended without a result to reuse (it failed, or its run stopped):
   * then this run runs it.
   */
  const waitingElsewhere = new Set<string>()
  // A node of this run is looked up in the cache (and among the trials running beside it) by the
  // fingerprint it was journaled with and by the one its strategy has now: a journal of before
  // 2026-12-05 recorded a mixture as written, and the run beside may have written it another way.
  const keysOf = (node: ExperimentNode.NodeSpec): ReadonlyArray<string> => {
    const now = Fingerprint.of(node.strategy)
    return now === node.fingerprint ? [now] : [node.fingerprint, now]
  }
  const cachedFor = (node: ExperimentNode.NodeSpec) => {
    for (const key of keysOf(node)) {
      const hit = cache.lookup(key)
      if (hit !== undefined) return hit
    }
    return undefined
  }
  const runningFor = (node: ExperimentNode.NodeSpec) => {
    for (const key of keysOf(node)) {
      const source = cache.running?.(key)
      if (source !== undefined) return source
    }
    return undefined
  }
  const awaitElsewhere = (node: ExperimentNode.NodeSpec, source: string): Effect.Effect<boolean, Errors.JournalError> =>
    Effect.gen(function*() {
      yield* Effect.logInfo(`trial ${node.id}: ${source} (another run) is running the same strategy; waiting for its result rather than running it too`)
      for (;;) {
        yield* Effect.sleep(ELSEWHERE_POLL)
        if (cache.refresh !== undefined) yield* cache.refresh
        const hit = cachedFor(node)
        if (hit !== undefined) {
          reusedCount++
          yield* finish(node.id, "Succeeded", reusedResult(hit))
          return true
        }
        if (runningFor(node) === undefined) {
          yield* Effect.logInfo(`trial ${node.id}: ${source} ended without a result to reuse; running the strategy here`)
          return false
        }
      }
    })

  const launch = (node: ExperimentNode.NodeSpec, job?: ExperimentNode.JobRef, reconcile = false) =>
    Effect.suspend(() => {
      inFlight.add(node.id)
      const elsewhere = job === undefined ? runningFor(node) : undefined
      return FiberMap.run(fibers, node.id, execute(node, job, reconcile, elsewhere))
    })

  // ---- reconcile what was in flight when the last controller stopped -----------------------
  for (const id of [...tree.ids()]) {
    const n = tree.view.get(id)!
    if (ExperimentNode.isFinished(n)) continue
    if (n.state._tag === "Proposed") {
      const estimate = admissionEstimate()
      if (!fits(estimate)) {
        yield* finish(id, "Cancelled", undefined, "budget exhausted before it could start")
        continue
      }
      ledger.reserve(id, estimate)
      yield* record([JournalEvent.make("NodeAdmitted", { nodeId: id, estimate, at: yield* now })])
    }
    // a trial a scheduler pruned (journaled) is not run again: its job, if it has one, is reattached to
    // and cancelled (the kill may have come before the cancel reached it), and the trial ends pruned
    // with what the job cost
    if (n.pruning !== undefined) {
      pruning.set(id, n.pruning)
      const prunedJob = n.state._tag === "Running" ? n.state.job : undefined
      if (prunedJob === undefined) {
        yield* finish(id, "Pruned", undefined, n.pruning)
        continue
      }
      yield* launch(n, prunedJob)
      yield* stopPruned(id)
      continue
    }
    // a trial a drain withdrew has no job left: submitted afresh at once (before any new trial), not reattached
    const job = n.state._tag === "Running" && n.withdrawn !== true ? n.state.job : undefined
    yield* launch(n, job, n.state._tag !== "Running")
  }

  // ---- the loop ------------------------------------------------------------------------------
  const unsubscribe = control?.onChange(() => Queue.offerUnsafe(wake, { _tag: "Control" }))
  // for the stagnation rule: trials run (finished, not reused from another run) so far, and when the best so far was found
  let lastBestAt = replayed.atBest
  let bestUtility = tree.view.best() !== undefined ? tree.view.root.stats.bestUtility : -Infinity
  let lastDistilled = replayed.atDistill
  finishedCount = lastDistilled
  let reason = "completed"
  let interrupted = false as boolean
  /** What ends the run as a failure once the trials in flight have finished. */
  let fatal = undefined as Errors.PolicyError | undefined
  /** Trials that all failed the same way: the run ends (finished) with this failure. */
  let alike = undefined as SameFailure.Alike | undefined

  const awaitWake = commit.pipe(Effect.andThen(Queue.take(wake)), Effect.andThen(Queue.clear(wake)))

  /** Whether model calls may still be paid for: the budget's dollars and tokens, if it has them, are not all spent or held. */
  function modelBudgetLeft(): boolean {
    const b = ledger.budget
    if (b.dollars === undefined && b.tokens === undefined) return true
    const held = Cost.add(ledger.spent, ledger.reserved)
    return (b.dollars === undefined || held.dollars < b.dollars) && (b.tokens === undefined || Cost.tokens(held) < b.tokens)
  }

  /** Why the budget cannot admit a trial of this estimate. */
  function budgetReason(estimate: Cost.Cost): string {
    return `budget: ${ledger.wouldExceed(estimate, 1) ?? ledger.exhausted() ?? "exhausted"}`
  }

  function estimateCost(): Cost.Cost {
    return estimateOf(runTask, trialCost, trialsCosted, trialTime.mean)
  }

  /**
   * The estimate a trial is admitted with (see {@link admittedWith}); the trials in flight hold at
   * least its expected part as well (those admitted before any trial had reported its cost held
   * nothing: they would let more trials start than the budget pays for).
   */
  function admissionEstimate(): Cost.Cost {
    const expected = estimateCost()
    ledger.holdAtLeast(expected)
    return admittedWith(runTask, runPricing, expected, trialsCosted)
  }

  /**
   * Whether a trial admitted with `estimate` (from {@link admissionEstimate}) may start now: the run's elapsed time
   * is read here, not at the loop's top, where the proposal's time since would be missed (a CI run admitted a trial
   * that was to end 3 ms past the wall clock).
   */
  function fits(estimate: Cost.Cost): boolean {
    updateElapsed()
    return admits(ledger, estimate, estimateCost(), inFlight.size === 0, runTask.budget.strict === true)
  }

  const heldSpace = runTask.searchSpace !== undefined && runTask.defaultStrategy !== undefined && SearchSpace.isConditional(runTask.searchSpace)
    ? runTask.searchSpace
    : undefined
  const tried = (fp: string) => isTried(tree.view, fp)
  const propose = (parentId: string) => Effect.flatMap(analysisOnce, (analysis) => proposeAttempt(parentId, analysis, 0))
  /**
   * Ask the researcher for a proposal under `parentId`; a try that gives only strategies already
   * tried (or invalid ones) is repeated, up to `attempts` tries, after which the node is exhausted
   * (`undefined`). A researcher that fails with a retryable error is asked again, up to
   * `researcherRetries` times; then (or at once, for an error that is not retryable) its error is
   * the answer, and the run stops without marking anything exhausted.
   */
  const proposeAttempt = (
    parentId: string,
    analysis: Researcher.Analysis,
    attempt: number
  ): Effect.Effect<{ readonly proposal: Researcher.Proposal; readonly fingerprint: string } | Errors.ResearcherError | undefined> => {
    if (attempt >= attempts) return Effect.succeed(undefined)
    const k = tree.view.size
    const ask = (failures: number): Effect.Effect<ReadonlyArray<Researcher.Proposal> | Errors.ResearcherError> =>
      // suspended: a researcher that throws as it is called (not in its effect) is caught as one whose effect dies
      Effect.suspend(() => researcher.propose({ task: runTask, analysis, tree: tree.view, parentId, usage: ledger.usage(), tried }, 1)).pipe(
        withSeed(`${seed}:${k}:${attempt}:propose`),
        researcherBug("propose"),
        Effect.catchTag("ResearcherError", (e) => {
          // a failure that asking again cannot mend (a refused key, a bug, an answer cut off at its
          // token limit) stops the run at once; one that may pass is asked again after a backoff
          if (!e.retryable || failures >= researcherRetries || control?.stopRequested !== undefined) return Effect.succeed(e)
          const delay = Math.min(Math.max(60_000, researcherRetryDelay), researcherRetryDelay * 2 ** failures)
          return Effect.logWarning(
            `researcher could not propose under ${parentId} (${failures + 1} of ${researcherRetries + 1}; again in ${Number((delay / 1000).toPrecision(3))} s): ${e.message}`
          ).pipe(Effect.andThen(Effect.sleep(Duration.millis(delay))), Effect.andThen(ask(failures + 1)))
        })
      )
    return Effect.flatMap(ask(0), (proposals) => {
      if (proposals instanceof Errors.ResearcherError) return Effect.succeed(proposals)
      // an invalid strategy is not run (nor journaled): the researcher is told in the log, and asked again
      const invalid: Array<string> = []
      const warned = <A, E>(next: Effect.Effect<A, E>) =>
        invalid.length === 0 ? next : Effect.andThen(Effect.logWarning(`researcher proposed an invalid strategy under ${parentId} (not run):\n${invalid.join("\n")}`), next)
      for (const p of proposals) {
        const wrong = strategyIssues(p.strategy)
        if (wrong !== undefined) {
          invalid.push(wrong)
          continue
        }
        // Parameters whose condition does not hold are held at the default strategy's value, so
        // a strategy that differs from a tried one only in them is not run again.
        const strategy = heldSpace !== undefined ? SearchSpace.normalize(heldSpace, p.strategy, runTask.defaultStrategy!) : p.strategy
        const fingerprint = Fingerprint.of(strategy)
        if (tried(fingerprint)) continue
        return warned(Effect.succeed({ proposal: strategy === p.strategy ? p : { ...p, strategy }, fingerprint }))
      }
      return warned(proposeAttempt(parentId, analysis, attempt + 1))
    })
  }

  // The analysis is asked for once per run and journaled (committed at once, like the model
  // charges it follows), so a resumed run proposes from the analysis the run started with and
  // never pays for a second one. A failed analysis is journaled as its placeholder too: the
  // uninterrupted run proposes from that placeholder to the end, so a resumed one must as well
  // (and a failure that was charged is not charged again). Only a kill before the event is
  // committed makes the resumed run ask again.
  // (Except after a stop because the researcher kept failing: an analysis that failed then, in the
  // same outage, is asked for again, as the run had not got past its researcher.)
  let reaskAnalysis = replayed.stoppedByResearcher && tree.view.analysis?.notes["failed"] === true
  const analysisOnce = Effect.suspend(() => {
    const journaled = tree.view.analysis
    if (journaled !== undefined && !reaskAnalysis) return Effect.succeed(journaled)
    reaskAnalysis = false
    return Effect.suspend(() => researcher.analyze(runTask)).pipe(
      researcherBug("analyze"),
      Effect.catchTag("ResearcherError", (e) =>
        Effect.succeed<Researcher.Analysis>({ summary: `analysis failed: ${e.message}`, metricNotes: "", dataNotes: "", risks: [], notes: { failed: true } })
      ),
      Effect.tap((analysis) => Effect.suspend(() => record([JournalEvent.make("AnalysisCompleted", { analysis, at: nowMs() })])))
    )
  })

  const distill = Effect.gen(function*() {
    const at = yield* now
    const insights = yield* Effect.suspend(() => researcher.distill({ task: runTask, tree: tree.view, now: at }))
      .pipe(researcherBug("distill"), Effect.catchTag("ResearcherError", () => Effect.succeed([])))
    const known = new Set(tree.view.insights.map((i) => i.id))
    // an insight the journal cannot hold (a value `undefined` or NaN in its data) is left out, said once: journaled, it failed the run
    const unfit = insights.filter((i) => !isInsight(i))
    if (unfit.length > 0) {
      const issues = oneLine(decodeInsight(unfit[0]))
      yield* Effect.logWarning(`researcher "${researcher.name}" distilled ${unfit.length} insight(s) the journal cannot hold, left out (${issues})`)
    }
    const fresh = insights.filter((i) => !known.has(i.id) && isInsight(i))
    // Journaled even when empty: a resumed run then distils on the same schedule.
    yield* record([JournalEvent.make("InsightsDistilled", { insights: fresh, at: yield* now })], "soon")
  })

  yield* Effect.gen(function*() {
    for (;;) {
      updateElapsed()
      // progress bookkeeping
      const finishedNow = countFinished(tree.view)
      if (finishedNow !== finishedCount) {
        const best = tree.view.best()
        const u = best === undefined ? -Infinity : tree.view.root.stats.bestUtility
        if (u > bestUtility) {
          bestUtility = u
          lastBestAt = finishedNow - reusedCount
        }
        finishedCount = finishedNow
      }
      if (distillEvery > 0 && finishedCount - lastDistilled >= distillEvery && control?.stopRequested === undefined && modelBudgetLeft()) {
        lastDistilled = finishedCount
        yield* unlessStopped(distill)
      }
      // stopping rules
      if (schedulerFailed !== undefined) {
        fatal = schedulerFailed
        reason = "the scheduler failed"
        break
      }
      // trials that all failed the same way, none having worked, or one after another since trials worked: the setup's
      // error, not the strategies' (no new trial starts; those in flight finish first: one that works, or fails
      // otherwise, and the run goes on)
      alike = control?.stopRequested === undefined ? sameFailures.stop() : undefined
      if (alike !== undefined) {
        if (inFlight.size > 0) {
          yield* awaitWake
          continue
        }
        reason = SameFailure.reasonOf(alike)
        break
      }
      const best = tree.view.best()
      const stopWhy =
        control?.stopRequested !== undefined ? "stopped by request"
        : best !== undefined && Task.reachesTarget(runTask, ExperimentNode.score(best)!) ? "target reached"
        : options.stagnation !== undefined && finishedCount - reusedCount - lastBestAt >= options.stagnation ? `no improvement in ${options.stagnation} trials`
        : budgetStop(ledger)
      if (stopWhy !== undefined) {
        reason = stopWhy
        break
      }
      if (control?.paused === true || inFlight.size >= concurrency) {
        yield* awaitWake
        continue
      }
      // a trial must be admissible before the researcher is asked for it (a model's proposal is paid for)
      const admissible = admissionEstimate()
      if (!fits(admissible)) {
        if (inFlight.size > 0) {
          yield* awaitWake
          continue
        }
        reason = budgetReason(admissible)
        break
      }
      // after a stop because trials all failed the same way, their strategies run again first (the setup mended)
      const again = sameFailures.next()
      if (again !== undefined) {
        const at = nowMs()
        const spec: ExperimentNode.NodeSpec = {
          id: `n${tree.view.size + 1}`,
          parent: again.parent,
          strategy: {
            ...again.strategy,
            rationale: `${AGAIN}${again.id} failed as the trials beside it did (a setup error, not its strategy's); run again once the setup was mended. ${
              // (once: a strategy run again twice keeps its own rationale, not a chain of these)
              again.strategy.rationale.startsWith(AGAIN) ? again.strategy.rationale.slice(again.strategy.rationale.indexOf(MENDED) + MENDED.length) : again.strategy.rationale
            }`.trim()
          },
          // the fingerprint its strategy has now, as every proposal's: a journal of before 2026-12-05 recorded a
          // mixture as written, and another run's result of the same mixture is found under this one, whichever
          // rule recorded it (the cache keys a node's result by both)
          fingerprint: Fingerprint.of(again.strategy),
          proposedAt: at,
          ...(again.prior !== undefined ? { prior: again.prior } : {})
        }
        if (cache.refresh !== undefined) yield* cache.refresh
        const hit = cache.lookup(spec.fingerprint)
        if (hit !== undefined) {
          yield* record([
            JournalEvent.make("NodeProposed", { node: spec, at }),
            JournalEvent.make("NodeFinished", { nodeId: spec.id, outcome: "Succeeded", result: reusedResult(hit), at })
          ], "soon")
          reusedCount++
          continue
        }
        ledger.reserve(spec.id, admissible)
        yield* record([JournalEvent.make("NodeProposed", { node: spec, at }), JournalEvent.make("NodeAdmitted", { nodeId: spec.id, estimate: admissible, at })])
        yield* launch(spec)
        continue
      }
      // select
      const context: SearchPolicy.SelectionContext = {
        budgetUsed: ledger.fractionUsed(),
        inFlight: inFlight.size,
        concurrency,
        finished: finishedCount,
        exhausted: tree.view.isExhausted
      }
      // suspended: a policy that throws as it is called (not in its effect) is a bug in it, as one whose effect dies
      const selection = yield* Effect.suspend(() => policy.select(tree.view, context)).pipe(
        withSeed(`${seed}:${tree.view.size}:select`),
        Effect.catchDefect((defect) => Effect.succeed(new Errors.PolicyError({ policy: policy.name, message: `${policy.name} failed unexpectedly (a bug in it): ${defectMessage(defect)}` })))
      )
      const wrong = selection instanceof Errors.PolicyError ? undefined : SearchPolicy.check(tree.view, context, selection)
      if (selection instanceof Errors.PolicyError || wrong !== undefined) {
        // no new trial starts; those in flight finish (a bug in the policy costs no training), then the run fails
        fatal = selection instanceof Errors.PolicyError ? selection : new Errors.PolicyError({ policy: policy.name, message: `${policy.name} ${wrong}` })
        yield* Effect.logError(`search policy: ${fatal.message}${inFlight.size > 0 ? ` (the run stops once the ${inFlight.size} trial(s) in flight finish)` : ""}`)
        reason = "the search policy failed"
        break
      }
      if (selection._tag === "Stop") {
        if (inFlight.size > 0) {
          yield* awaitWake
          continue
        }
        reason = selection.reason
        break
      }
      if (selection._tag === "Wait") {
        if (inFlight.size === 0) {
          reason = "the policy has nothing to expand"
          break
        }
        yield* awaitWake
        continue
      }
      // propose
      const parentId = selection.nodeId
      const picked = yield* unlessStopped(propose(parentId))
      // a stop requested while the researcher was proposing: nothing new starts (a resumed run proposes again)
      if (control?.stopRequested !== undefined) continue
      if (picked === undefined) {
        yield* record([JournalEvent.make("NodeExhausted", { nodeId: parentId, at: nowMs() })], "soon")
        continue
      }
      // the researcher failed, asked again and again: stop, with nothing marked exhausted (a resumed run asks again)
      if (picked instanceof Errors.ResearcherError) {
        reason = `${RESEARCHER_FAILED}: ${picked.message}`
        break
      }
      const at = nowMs()
      const spec: ExperimentNode.NodeSpec = {
        id: `n${tree.view.size + 1}`,
        parent: parentId,
        strategy: picked.proposal.strategy,
        fingerprint: picked.fingerprint,
        proposedAt: at,
        ...(picked.proposal.prior !== undefined ? { prior: picked.proposal.prior } : {})
      }
      // reuse a result from another run (with the next group commit: nothing outside depends on it,
      // and a resumed run that lost it finds the same result again); runs beside this one are read again first
      if (cache.refresh !== undefined) yield* cache.refresh
      const hit = cache.lookup(picked.fingerprint)
      if (hit !== undefined) {
        yield* record([
          JournalEvent.make("NodeProposed", { node: spec, at }),
          JournalEvent.make("NodeFinished", {
            nodeId: spec.id,
            outcome: "Succeeded",
            result: reusedResult(hit),
            at
          })
        ], "soon")
        reusedCount++
        continue
      }
      // admit
      const estimate = admissionEstimate()
      if (!fits(estimate)) {
        if (inFlight.size > 0) {
          yield* awaitWake
          continue
        }
        reason = budgetReason(estimate)
        break
      }
      ledger.reserve(spec.id, estimate)
      yield* record([JournalEvent.make("NodeProposed", { node: spec, at }), JournalEvent.make("NodeAdmitted", { nodeId: spec.id, estimate, at })])
      yield* launch(spec)
    }
    // Wait for what is still running, as a stop asks, also one asked for while waiting (the loop may
    // have ended on the budget with trials still in flight): a drain lets running trials finish and
    // withdraws those whose job still waits in its backend's queue (as the tree knows from their
    // journaled `JobState`: they have not started, and run on resume); a cancel stops them all.
    let drained = false
    for (;;) {
      if (control?.stopRequested === "cancel") {
        interrupted = true
        if (inFlight.size > 0) reason = STOPPED_BY_REQUEST
        yield* FiberMap.clear(fibers)
        break
      }
      if (control?.stopRequested === "drain" && !drained) {
        drained = true
        if (inFlight.size > 0) reason = STOPPED_BY_REQUEST
        for (const id of [...inFlight]) if (tree.view.get(id)?.waiting !== undefined) yield* withdraw(id)
        // a trial waiting for another run's result has started nothing: it stops waiting (a resumed run waits again)
        for (const id of [...waitingElsewhere]) yield* FiberMap.remove(fibers, id)
      }
      if (inFlight.size === 0) break
      yield* awaitWake
    }
    yield* FiberMap.awaitEmpty(fibers)
    // (a stopped run distils on its schedule when it is resumed, as an uninterrupted one would)
    // (nor when the budget for model calls is spent: a model's distillation would overrun it)
    if (control?.stopRequested === undefined && distillEvery > 0 && countFinished(tree.view) > lastDistilled && modelBudgetLeft()) yield* distill
    updateElapsed()
    if (!interrupted && fatal === undefined) {
      const bestNode = tree.view.best()
      yield* record([
        JournalEvent.make("RunFinished", { reason, at: yield* now, ...(bestNode !== undefined ? { bestNode: bestNode.id } : {}) })
      ])
    }
  }).pipe(Effect.ensuring(Effect.andThen(Effect.sync(() => unsubscribe?.()), Effect.ignore(commit))))
  if (fatal !== undefined) return yield* fatal
  // (unless a second stop cancelled the trials in flight meanwhile: the run then stopped by request)
  if (alike !== undefined && !interrupted && reason === SameFailure.reasonOf(alike)) {
    const best = tree.view.best()
    const score = best !== undefined ? ExperimentNode.score(best) : undefined
    return yield* new Errors.SetupFailure({
      runId: options.runId,
      failure: alike.shown,
      nodes: alike.nodes,
      ...(alike.refused === true ? { refused: true } : {}),
      message: SameFailure.messageOf(alike, best !== undefined ? `${best.id}, ${runTask.metric.name} ${score !== undefined ? Number(score.toPrecision(4)) : "-"}` : undefined)
    })
  }

  return {
    runId: options.runId,
    reason,
    tree: tree.view,
    best: tree.view.best(),
    usage: ledger.usage(),
    interrupted
  } satisfies Summary
})

/**
 * Whether a run with these journal entries could start another trial under `task`'s budget (the
 * run's recorded task, with the budget it would resume with), as the explorer decides it when it
 * resumes: `blockedBy` is the limit that the run has used up, or that a trial of its current
 * estimate would pass; `undefined` when a trial fits, or when trials are in flight (a resume
 * finishes them, and they may make room). `trex resume` asks it before it resumes a run with new
 * limits, which would otherwise end at once, having run nothing; `estimate` is what a trial is
 * expected to cost, `usage` what was used.
 *
 * @example
 * ```ts
 * import { Explorer } from "@trex/mcts"
 * declare const entries: ReadonlyArray<import("@trex/core").JournalEvent.Entry>
 * declare const task: import("@trex/core").Task.Task
 * const { blockedBy } = Explorer.admission(entries, { ...task, budget: { ...task.budget, gpuHours: 60 } })
 * ```
 * @since 0.1.0 @category utilities
 */
export const admission = (
  entries: ReadonlyArray<JournalEvent.Entry>,
  task: Task.Task
): { readonly blockedBy: Budget.Limit | undefined; readonly estimate: Cost.Cost; readonly usage: Budget.Usage } => {
  const { ledger, priorElapsed, trialTime } = replayBudget(entries, task)
  const { trialCost, trialsCosted } = progressOf(entries, task)
  ledger.setElapsed(priorElapsed / 1000)
  const expected = estimateOf(task, trialCost, trialsCosted, trialTime.mean)
  ledger.holdAtLeast(expected)
  const estimate = admittedWith(task, Backend.pricingOf(task.backend), expected, trialsCosted)
  const blockedBy = inFlightOf(entries) > 0 || admits(ledger, estimate, expected, true, task.budget.strict === true) ? undefined : ledger.exhausted() ?? ledger.wouldExceed(estimate, 1)
  return { blockedBy, estimate, usage: ledger.usage() }
}

/** The trials proposed and not finished: a resumed run reattaches to them, or starts them. */
const inFlightOf = (entries: ReadonlyArray<JournalEvent.Entry>): number => {
  const open = new Set<string>()
  for (const { event } of entries) {
    if (event._tag === "NodeProposed") open.add(event.node.id)
    else if (event._tag === "NodeFinished") open.delete(event.nodeId)
  }
  return open.size
}

/** The ledger as of the journal, the milliseconds the run was active (from each start or resume to its session's last event), and the time its trials took. */
const replayBudget = (entries: ReadonlyArray<JournalEvent.Entry>, task: Task.Task) => {
  const ledger = new Budget.Ledger(task.budget)
  const trialTime = new TrialTime()
  let priorElapsed = 0
  let sessionStart = 0
  let lastAt = 0
  for (const { event } of entries) {
    ledger.apply(event)
    trialTime.apply(event)
    if (event._tag === "RunStarted" || event._tag === "RunResumed") {
      priorElapsed += Math.max(0, lastAt - sessionStart)
      sessionStart = event.at
    }
    lastAt = event.at
  }
  priorElapsed += Math.max(0, lastAt - sessionStart)
  return { ledger, priorElapsed, trialTime }
}

/**
 * What one trial is expected to cost: the recipe's estimate, or, when larger, the mean GPU time and
 * dollars of the `trialsCosted` trials that reported a cost (`trialCost` in all) and the mean time
 * trials took from admission to end (`meanWallSeconds`).
 */
const estimateOf = (task: Task.Task, trialCost: Cost.Cost, trialsCosted: number, meanWallSeconds: number): Cost.Cost => {
  const declared = task.recipe?.estimate
  const wallSeconds = Math.max(declared?.wallSeconds ?? 0, meanWallSeconds)
  const base = Cost.make({
    ...(declared?.gpuSeconds !== undefined ? { gpuSeconds: declared.gpuSeconds } : {}),
    ...(wallSeconds > 0 ? { wallSeconds } : {}),
    ...(declared?.dollars !== undefined ? { dollars: declared.dollars } : {})
  })
  if (trialsCosted === 0) return base
  return {
    ...base,
    gpuSeconds: Math.max(base.gpuSeconds, trialCost.gpuSeconds / trialsCosted),
    dollars: Math.max(base.dollars, trialCost.dollars / trialsCosted)
  }
}

/**
 * What a trial is admitted with (reserved while it runs): its `expected` cost, except that before
 * any trial has reported a cost, a trial with a time limit (`recipe.resources.timeLimitSeconds`)
 * holds that limit's worth of its GPUs (and of `pricing`, the task's `backend.pricing`) where the recipe
 * declares no estimate. So the first trials to start at once cannot together pass a GPU-hour or
 * dollar limit; the first of them starts whatever its bound (see {@link admits}). Under a strict
 * budget (`budget.strict`), every trial holds the most it can cost, the whole run long.
 */
const admittedWith = (task: Task.Task, pricing: Backend.Pricing | undefined, expected: Cost.Cost, trialsCosted: number): Cost.Cost => {
  const limit = task.recipe?.resources.timeLimitSeconds
  const strict = task.budget.strict === true
  if ((trialsCosted > 0 && !strict) || limit === undefined) return expected
  const worst = { gpuSeconds: limit * (task.recipe?.resources.gpus ?? 0), wallSeconds: limit }
  const worstDollars = pricing !== undefined ? Backend.price(pricing, worst) : 0
  if (strict) {
    // the most a trial can cost, whatever was expected of it (a time limit stops it there)
    return {
      ...expected,
      gpuSeconds: Math.max(expected.gpuSeconds, worst.gpuSeconds),
      wallSeconds: Math.max(expected.wallSeconds, worst.wallSeconds),
      dollars: Math.max(expected.dollars, worstDollars)
    }
  }
  const declared = task.recipe?.estimate
  return {
    ...expected,
    gpuSeconds: declared?.gpuSeconds ?? worst.gpuSeconds,
    dollars: declared?.dollars ?? worstDollars
  }
}

/**
 * Whether the budget admits a trial reserved at `estimate`: it fits, or it is the only trial and fits
 * at its `expected` cost (a time limit's worth bounds the trials that start together before any cost
 * is known; it does not keep the first from starting, for that is how a cost becomes known). Under a
 * strict budget, only a trial whose most fits starts.
 */
const admits = (ledger: Budget.Ledger, estimate: Cost.Cost, expected: Cost.Cost, alone: boolean, strict: boolean): boolean =>
  ledger.canAdmit(estimate) || (alone && !strict && estimate !== expected && ledger.canAdmit(expected))

/**
 * `Random.withSeed`, seeded on first use: the same numbers, but a selection that never draws one
 * (UCT without a tie, most of the time) does not pay for seeding a generator (256 words of state).
 */
const withSeed = (seed: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    let rng: Random.Random | undefined
    const get = () => (rng ??= Effect.runSync(Random.withSeed(Effect.service(Random.Random), seed)))
    return Effect.provideService(self, Random.Random, {
      nextIntUnsafe: () => get().nextIntUnsafe(),
      nextDoubleUnsafe: () => get().nextDoubleUnsafe()
    })
  })

const defectMessage = (defect: unknown): string => (defect instanceof globalThis.Error ? defect.message : String(defect))

/** A researcher that throws (a bug) fails as a researcher that errs, not as the run. */
const researcherBug = (operation: string) => <A, R>(self: Effect.Effect<A, Errors.ResearcherError, R>): Effect.Effect<A, Errors.ResearcherError, R> =>
  Effect.catchDefect(self, (defect) =>
    Effect.fail(new Errors.ResearcherError({ operation, message: `${operation} failed unexpectedly (a bug in the researcher): ${defectMessage(defect)}`, retryable: false })))

const decodeStrategy = Schema.decodeUnknownExit(Strategy.Strategy)
const decodeResult = Schema.decodeUnknownExit(Result.Result)
const isResult: (u: unknown) => boolean = Schema.is(Result.Result)
const isMetricPoint = Schema.is(Result.MetricPoint)
const isCost = Schema.is(Cost.Cost)
const isInsight: (u: unknown) => boolean = Schema.is(Insight.Insight)
const decodeInsight = Schema.decodeUnknownExit(Insight.Insight)
/** What a decode found wrong, each issue naming its field, on one line (`""` when nothing). */
const oneLine = (decoded: Exit.Exit<unknown, Schema.SchemaError>): string =>
  decoded._tag === "Success" ? "" : TaskFile.formatIssues(Cause.squash(decoded.cause)).trim().replace(/\s*\n\s*/g, "; ")
/** What makes a proposed strategy invalid (each issue naming its field), or `undefined`. */
const strategyIssues = (strategy: unknown): string | undefined => {
  // the check first (a few microseconds); the decode only to word what is wrong
  if (Strategy.is(strategy)) return undefined
  const decoded = decodeStrategy(strategy)
  return decoded._tag === "Success" ? undefined : TaskFile.formatIssues(Cause.squash(decoded.cause))
}

/** How the rationale of a strategy run again after a setup error begins, and where its own rationale follows. */
const AGAIN = "Again: "
const MENDED = "once the setup was mended. "

/** The wait before attempt `tries + 1` of a trial that failed retryably: 2, 4, 8... seconds, at most 30. */
const retryDelay = (tries: number): Duration.Duration => Duration.seconds(Math.min(30, 2 ** (tries + 1)))

/** The longest an event waits for its commit when nothing else commits first. */
const GROUP_COMMIT = "20 millis"
/** Another run's result as this run's: it cost this run nothing, and says where it came from. */
const reusedResult = (hit: ResultCache.Hit): Result.Result => ({ ...hit.result, cost: Cost.zero, reusedFrom: hit.source })
/** How often a trial waiting for another run's trial of the same strategy looks for its result. */
const ELSEWHERE_POLL = "1 second"
/** How long a pruned trial's stream may go on after its job was cancelled, to report the cost it ran up, before it is stopped. */
const PRUNE_GRACE = Duration.minutes(2)
/** The reason journaled for a pruned trial: the scheduler, the step, and the points of the report it was pruned on (at most 3). */
const prunedBecause = (scheduler: string, points: ReadonlyArray<Result.MetricPoint>): string => {
  const step = Math.max(...points.map((p) => p.step))
  const shown = points.slice(0, 3).map((p) => `${p.split}/${p.name} ${Number(p.value.toPrecision(6))}`)
  return `stopped early by the scheduler (${scheduler}) at step ${step}: ${shown.join(", ")}${points.length > 3 ? ", ..." : ""}`
}
/** The reason of the charge of a pruned trial's cost (a whole trial's is "trial"). */
const PRUNED_TRIAL = "pruned trial"

/**
 * From the journal, as the loop counted them: the results finished when insights were last
 * distilled; the results reused from other runs, and the trials run (finished, not reused) when the
 * best result so far was found (0 if never); the summed cost of the trials that reported one, and
 * their number.
 */
const progressOf = (entries: ReadonlyArray<JournalEvent.Entry>, task: Task.Task) => {
  let finished = 0
  let reused = 0
  let atDistill = 0
  let atBest = 0
  let best = -Infinity
  let trialCost = Cost.zero
  let trialsCosted = 0
  let stoppedByResearcher = false
  const counted = new Set<string>()
  for (const { event } of entries) {
    if (event._tag === "BudgetCharged" && event.reason === "trial") {
      trialCost = Cost.add(trialCost, event.cost)
      trialsCosted++
    } else if (event._tag === "NodeFinished" && event.outcome !== "Cancelled" && !counted.has(event.nodeId)) {
      counted.add(event.nodeId)
      finished++
      if (event.result?.reusedFrom !== undefined) reused++
      const score = event.outcome === "Succeeded" ? event.result?.score : undefined
      if (score !== undefined && Task.utility(task, score) > best) {
        best = Task.utility(task, score)
        atBest = finished - reused
      }
    } else if (event._tag === "InsightsDistilled") atDistill = finished
    else if (event._tag === "RunFinished") stoppedByResearcher = event.reason.startsWith(RESEARCHER_FAILED)
  }
  return { atDistill, atBest, reused, trialCost, trialsCosted, stoppedByResearcher }
}

/**
 * The jobs journaled for each node not finished, in order: one per `JobSubmitted`, a job a draining
 * run withdrew (it never started) left out unless `withdrawn`. The last is the job a resumed run reattaches.
 */
const journaledJobs = (entries: ReadonlyArray<JournalEvent.Entry>, withdrawn = false): Map<string, Array<ExperimentNode.JobRef>> => {
  const jobs = new Map<string, Array<ExperimentNode.JobRef>>()
  for (const { event } of entries) {
    if (event._tag === "JobSubmitted") {
      const known = jobs.get(event.nodeId)
      if (known === undefined) jobs.set(event.nodeId, [event.job])
      else known.push(event.job)
    } else if (event._tag === "JobState" && event.state === "Withdrawn" && !withdrawn) jobs.get(event.nodeId)?.pop()
    else if (event._tag === "NodeFinished") jobs.delete(event.nodeId)
  }
  return jobs
}

/** A fingerprint that is in the tree already (finished, running or queued; not cancelled). */
const isTried = (tree: ExperimentTree.TreeView, fingerprint: string): boolean => {
  const n = tree.byFingerprint(fingerprint)
  return n !== undefined && n.state._tag !== "Cancelled"
}

const countFinished = (tree: ExperimentTree.TreeView): number => tree.root.stats.visits

const budgetStop = (ledger: Budget.Ledger): string | undefined => {
  const limit = ledger.exhausted()
  return limit === undefined ? undefined : `budget: ${limit}`
}

const hasCost = (c: Cost.Cost): boolean =>
  c.gpuSeconds > 0 || c.wallSeconds > 0 || c.dollars > 0 || c.inputTokens > 0 || c.outputTokens > 0

/** A result without a score and without a failure is an InvalidOutput failure. */
const failedIfUnscored = (result: Result.Result, task: Task.Task): Result.Result =>
  result.failure !== undefined || result.score !== undefined
    ? result
    : {
      ...result,
      failure: {
        kind: "InvalidOutput",
        message: `the result has no primary score and no metric "${task.metric.name}"`,
        logTail: [],
        retryable: false
      }
    }
