/**
 * The `trex` command line: `run`, `resume`, `status`, `notify`, `report` (and `bench`).
 * Bad input exits 2 with a message naming the field and no stack trace.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Budget, Errors, Journal, JournalEvent, TaskFile } from "@trex/core"
import type { Explorer } from "@trex/mcts"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { Argument, Command, Flag } from "effect/cli"
import type * as Bench from "./Bench.ts"
import * as Follow from "./Follow.ts"
import * as Notify from "./Notify.ts"
import * as RunDir from "./RunDir.ts"
import * as Runs from "./Runs.ts"
import * as Settings from "./Settings.ts"
import * as Status from "./Status.ts"
import { HandOver } from "./internal/handOver.ts"
import * as LogTails from "./internal/logTails.ts"
import * as ResearcherFlags from "./internal/researcherFlags.ts"
import { MAX_MODEL_TIMEOUT_SECONDS } from "./internal/modelLimits.ts"
import { writeReportFile } from "./internal/reportFile.ts"
import { processOf } from "./internal/lockHolder.ts"
import * as Detach from "./internal/detach.ts"
import * as StopSignal from "./internal/stopSignal.ts"
import * as Untrusted from "./internal/untrusted.ts"
import type * as Trex from "./Trex.ts"

// The code of a run (its agents and backends: Trex.ts and what it wires; the search, `@trex/mcts`; the live view), of
// `check`, of the HTML report and of the bench, loaded by the command that runs it: `trex --help`, `trex status` and
// `trex list` load none of it (`trex status --follow` loads the live view).
const load = {
  trex: Effect.promise(() => import("./Trex.ts")),
  mcts: Effect.promise(() => import("@trex/mcts")),
  liveView: Effect.promise(() => import("./LiveView.ts")),
  check: Effect.promise(() => import("./Check.ts")),
  htmlReport: Effect.promise(() => import("./HtmlReport.ts")),
  bench: Effect.promise(() => import("./Bench.ts"))
}

const out = (text: string) => Effect.sync(() => process.stdout.write(text.endsWith("\n") ? text : text + "\n"))

/** Write a report file; a file that cannot be written (a read-only run directory, a full disk) is bad input naming it. */
const writeReport = (file: string, text: string) =>
  Effect.suspend(() => {
    const failed = writeReportFile(file, text)
    return failed === undefined ? Effect.void : Effect.fail(new Errors.InvalidInput({ source: file, message: failed }))
  })

/**
 * Run (or continue) a prepared search with the live view, then print where it is and the best strategy.
 * @since 0.1.0 @category commands
 */
export const execute = (prepared: Trex.Prepared, notify?: Notify.Options) => {
  // a resumed run's entries are handed to the live view and the run once, and let go of (not held for the session)
  const { journaled, ...run } = prepared
  const given = new HandOver(journaled)
  return Effect.gen(function*() {
    const { runDir, task } = run
    const LiveView = yield* load.liveView
    const { Control } = yield* load.mcts
    const view = LiveView.make({
      tty: process.stdout.isTTY === true,
      write: (s) => process.stdout.write(s),
      columns: () => process.stdout.columns,
      ...yield* LiveView.terminalWidths()
    })
    // a resumed run's entries, as prepare read them (read again only for a run prepared without them)
    yield* Effect.suspend(() => {
      const entries = given.peek()
      return entries !== undefined
        ? Effect.sync(() => view.prime(entries, task.budget))
        : fs.existsSync(RunDir.journalFile(runDir))
        ? Effect.map(RunDir.readEntries(runDir), (read) => view.prime(read, task.budget))
        : Effect.sync(() => view.prime([], task.budget))
    })
    yield* out(`run directory: ${runDir}`)
    // a detached controller (`--detach`) tells its launcher where the run is once it has journaled
    // its start (it holds the run then: a run another controller holds fails before), and goes on alone
    let announced = false
    const onEvent: typeof view.onEvent = (entry, tree) => {
      if (!announced) Detach.announce(runDir)
      announced = true
      view.onEvent(entry, tree)
    }
    // The first Ctrl-C (or SIGTERM) stops starting trials and lets the running ones finish; a second cancels them.
    const control = new Control.Control()
    let stoppedBy: NodeJS.Signals | undefined
    let summary: Explorer.Summary | undefined
    /** Trials that failed the same way stopped the run (a setup error, or one that broke under it). */
    let setup: Errors.SetupFailure | undefined
    /** The run as the report was written from it (read once, at its end). */
    let ended: RunDir.RunInfo | undefined
    yield* Effect.scoped(Effect.gen(function*() {
      yield* StopSignal.onFirstSignal((signal) => {
        stoppedBy = signal
        control.stop("drain")
        view.note(
          `${signal === "SIGINT" ? "Ctrl-C" : signal === "SIGPIPE" ? "output closed" : signal === "SIGHUP" ? "terminal closed (SIGHUP)" : signal}: stopping. No new trials start; the running ones finish and are kept ` +
            `(those still waiting in the backend's queue are withdrawn: they run on resume). ` +
            `${signal === "SIGINT" ? "Press Ctrl-C" : "Signal"} again to cancel them now (they would run again on resume).\n`,
          (text) => process.stderr.write(text)
        )
      })
      const Trex = yield* load.trex
      summary = yield* Effect.suspend(() => {
        const entries = given.take()
        return Trex.runPrepared(entries !== undefined ? { ...run, journaled: entries } : run, {
          onEvent,
          control,
          onEnded: (info) => void (ended = info),
          ...(notify !== undefined ? { notify } : {})
        })
      }).pipe(
        Effect.catchTag("SetupFailure", (e) => Effect.sync(() => void (setup = e))),
        Effect.ensuring(Effect.sync(() => view.close())),
        Effect.onInterrupt(() => out(`\nstopped, running trials cancelled; continue with: trex resume ${runDir}`))
      )
    }))
    if (stoppedBy !== undefined) {
      yield* out(`\nstopped; continue with: trex resume ${runDir}`)
      const signal = stoppedBy
      yield* Effect.sync(() => {
        // with the output gone, where to go on is said where it can still be read
        if (signal === "SIGPIPE") process.stderr.write(`trex: stopped; continue with: trex resume ${runDir}\n`)
        process.exitCode = StopSignal.exitCodeOf(signal)
      })
    }
    // runPrepared wrote report.md when the run ended, from the journal it read then
    const info = ended ?? (yield* RunDir.load(runDir))
    yield* out(["", Status.toText(info, runDir), "", `report: ${path.join(runDir, "report.md")}`].join("\n"))
    // a search that found nothing (every trial failed, or none ran), or whose researcher failed: say so, and exit 1 for scripts
    const failed = [...info.tree.view.nodes()].filter((n) => n.state._tag === "Failed").length
    const researcherFailed = summary?.reason.startsWith(JournalEvent.RESEARCHER_FAILED) === true
    if (setup !== undefined) {
      const first = setup.nodes[0]!
      // its failure is as the job's log read (an escape sequence of a trainer's output too)
      const why = `${Untrusted.line(setup.message)} (\`trex status ${runDir} --node ${first}\` shows ${first} in full, with its job's last log lines). ` +
        `Once mended: trex resume ${runDir}` +
        // (a refusal of the executor's key is never a strategy's own)
        (setup.refused === true ? "" : `   (if these failures are the strategies' own, \`trex resume ${runDir} --fail-fast 0\` goes on without this stop)`)
      return yield* Effect.sync(() => {
        process.stderr.write(`trex: ${why}\n`)
        process.exitCode = 1
      })
    }
    if ((info.tree.view.best() === undefined || researcherFailed) && stoppedBy === undefined) {
      const why = researcherFailed
        ? `${Untrusted.line(summary!.reason)}; once it is mended (its key, model or network), continue with: trex resume ${runDir}`
        : failed > 0
        ? `no trial succeeded (${failed} failed): their reasons are above and in ${path.join(runDir, "report.md")}; ` +
          `\`trex status ${runDir} --node <id>\` shows one in full, with its job's last log lines`
        : `no trial ran (${summary?.reason ?? "the run ended"})`
      yield* Effect.sync(() => {
        process.stderr.write(`trex: ${why}\n`)
        process.exitCode = 1
      })
    }
  })
}

/** A flag's default, shown in its help as well (`... (default x)`), from the one value. */
const defaulted = <const B>(value: B, description: string) => <A>(self: Flag.Flag<A>): Flag.Flag<A | B> =>
  self.pipe(Flag.withDefault(value), Flag.withDescription(`${description} (default ${String(value)})`))

/** The limits of the budget other than the trial budget, as flags of `run` (instead of the task's) and `resume` (the run's from here on). */
const limitFlags = (what: string) => ({
  gpuHours: Flag.Finite("gpu-hours").pipe(Flag.optional, Flag.withDescription(`the GPU-hours budget ${what}`)),
  wallClockHours: Flag.Finite("wall-clock-hours").pipe(Flag.optional, Flag.withDescription(`the wall-clock budget in hours ${what} (resumes add up)`)),
  dollars: Flag.Finite("dollars").pipe(Flag.optional, Flag.withDescription(`the budget in dollars ${what} (model calls, and trials at the prices of the task's backend.pricing)`)),
  tokens: Flag.Int("tokens").pipe(Flag.optional, Flag.withDescription(`the budget in model tokens ${what}`)),
  strictBudget: Flag.Boolean("strict-budget").pipe(
    Flag.withDefault(false),
    Flag.withDescription(`hold every trial at the most it can cost (its time limit's worth) ${what}, so that trials never together pass gpuHours, dollars or wallClockHours (budget.strict)`)
  )
})

/** The limits given by flags, checked (each named with its fix), or `undefined` when none is. */
const limitsOf = (flags: {
  readonly gpuHours: Option.Option<number>
  readonly wallClockHours: Option.Option<number>
  readonly dollars: Option.Option<number>
  readonly tokens: Option.Option<number>
  readonly strictBudget: boolean
}): Effect.Effect<Budget.Budget | undefined, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const budget: { -readonly [K in keyof Budget.Budget]: Budget.Budget[K] } = {}
    for (const [key, flag] of [["gpuHours", "--gpu-hours"], ["wallClockHours", "--wall-clock-hours"], ["dollars", "--dollars"], ["tokens", "--tokens"]] as const) {
      const value = flags[key]
      if (Option.isNone(value)) continue
      if (!(value.value > 0)) return yield* new Errors.InvalidInput({ source: flag, message: `${flag} must be more than 0, got ${value.value}` })
      budget[key] = value.value
    }
    if (flags.strictBudget) budget.strict = true
    return Object.keys(budget).length > 0 ? budget : undefined
  })

const detachFlag = Flag.Boolean("detach").pipe(
  Flag.withDefault(false),
  Flag.withDescription(
    "run the controller in the background, in a session of its own (closing the terminal or logging out does not stop it), its output in <run-dir>/controller.log; " +
      "say where the run is and exit (trex status --follow follows it, trex stop stops it)"
  )
)

/** `--max-retry-after`, of `run` and (for its session) `resume`. */
const maxRetryAfterFlag = (what: string) =>
  Flag.Finite("max-retry-after").pipe(
    Flag.optional,
    Flag.withDescription(
      `seconds: the longest wait a model server's retry-after may ask for and be waited out${what}; a longer one (a spent daily quota) ` +
        "stops the model's call at once, saying how long it asked for" +
        ResearcherFlags.defaultClause(what, "60, a per-minute rate limit's longest")
    )
  )

/** `--max-retry-after`, checked (0 or more seconds), or `undefined` when not given. */
const maxRetryAfterOf = (value: Option.Option<number>): Effect.Effect<{ readonly maxRetryAfterSeconds?: number }, Errors.InvalidInput> =>
  Option.isNone(value) ? Effect.succeed({})
    : value.value >= 0 ? Effect.succeed({ maxRetryAfterSeconds: value.value })
    : Effect.fail(new Errors.InvalidInput({
      source: "--max-retry-after",
      message: `--max-retry-after must be 0 or more seconds, got ${value.value}: the longest wait a model server's retry-after may ask for, e.g. --max-retry-after 3600 to wait out an hour`
    }))

/** How the model retries and waits, of `run` and (for its session) `resume`: `--model-max-retries`, `--model-retry-delay`, `--model-max-retry-delay`, `--model-timeout`. */
const modelCallFlags = (what: string) => ({
  modelMaxRetries: Flag.Int("model-max-retries").pipe(
    Flag.optional,
    Flag.withDescription(`retries of a model call that failed retryably (a 429, a 5xx, a lost connection), after its first attempt${what}${ResearcherFlags.defaultClause(what, "4", "0: none")}`)
  ),
  modelRetryDelay: Flag.Finite("model-retry-delay").pipe(
    Flag.optional,
    Flag.withDescription(`seconds: the first wait before a model call's retry, doubled each retry and jittered${what}${ResearcherFlags.defaultClause(what, "1")}`)
  ),
  modelMaxRetryDelay: Flag.Finite("model-max-retry-delay").pipe(
    Flag.optional,
    Flag.withDescription(`seconds: the longest wait before a model call's retry, but a longer retry-after${what}${ResearcherFlags.defaultClause(what, "30")}`)
  ),
  modelTimeout: Flag.Finite("model-timeout").pipe(
    Flag.optional,
    Flag.withDescription(`seconds one attempt of a model call may take (a stream: its headers, then each event) before it is given up and retried${what}${ResearcherFlags.defaultClause(what, "600")}`)
  )
})

/** The flags of {@link modelCallFlags}, checked (each named, with what it takes), as `Trex.Options`: those given. */
const modelCallOf = (flags: {
  readonly modelMaxRetries: Option.Option<number>
  readonly modelRetryDelay: Option.Option<number>
  readonly modelMaxRetryDelay: Option.Option<number>
  readonly modelTimeout: Option.Option<number>
}) =>
  Effect.gen(function*() {
    const bad = (source: string, message: string) => new Errors.InvalidInput({ source, message: `${source} ${message}` })
    const retries = Option.getOrUndefined(flags.modelMaxRetries)
    if (retries !== undefined && retries < 0) {
      return yield* bad("--model-max-retries", `must be 0 or more, got ${retries}: the retries of a model call after its first attempt, e.g. --model-max-retries 8 (0: none)`)
    }
    const delay = Option.getOrUndefined(flags.modelRetryDelay)
    if (delay !== undefined && delay < 0) {
      return yield* bad("--model-retry-delay", `must be 0 or more seconds, got ${delay}: the first wait before a model call's retry, e.g. --model-retry-delay 2`)
    }
    const maxDelay = Option.getOrUndefined(flags.modelMaxRetryDelay)
    if (maxDelay !== undefined && maxDelay < 0) {
      return yield* bad("--model-max-retry-delay", `must be 0 or more seconds, got ${maxDelay}: the longest wait before a model call's retry, e.g. --model-max-retry-delay 60`)
    }
    const timeout = Option.getOrUndefined(flags.modelTimeout)
    if (timeout !== undefined && !(timeout > 0)) {
      return yield* bad("--model-timeout", `must be more than 0 seconds, got ${timeout}: how long one attempt of a model call may take, e.g. --model-timeout 1200 for 20 minutes`)
    }
    // the models' timeoutMs is a timer's wait: Node's timers keep at most 2^31 - 1 ms (a longer one fires at once)
    if (timeout !== undefined && timeout > MAX_MODEL_TIMEOUT_SECONDS) {
      return yield* bad(
        "--model-timeout",
        `must be at most ${MAX_MODEL_TIMEOUT_SECONDS} seconds (about 24.8 days, the longest wait a timer keeps), got ${timeout}: how long one attempt of a model call may take, e.g. --model-timeout 1200 for 20 minutes`
      )
    }
    return {
      ...(retries !== undefined ? { modelMaxRetries: retries } : {}),
      ...(delay !== undefined ? { modelRetryDelaySeconds: delay } : {}),
      ...(maxDelay !== undefined ? { modelMaxRetryDelaySeconds: maxDelay } : {}),
      ...(timeout !== undefined ? { modelTimeoutSeconds: timeout } : {})
    }
  })

/** `--notify URL` (again for more webhooks) and `--notify-best`, of `run` and `resume`. */
const notifyFlags = {
  notify: Flag.Redacted("notify").pipe(
    Flag.atLeast(0),
    Flag.withDescription(
      `post a message to this webhook (a Slack or Mattermost incoming webhook, or any URL that takes JSON) when the run ends; give it again for more. ` +
        `${Notify.ENV} (addresses separated by spaces) adds more and, unlike a flag, is not shown in the process list`
    )
  ),
  notifyBest: Flag.Boolean("notify-best").pipe(Flag.withDefault(false), Flag.withDescription("also post each new best trial to the webhooks")),
  notifyMaxAge: Flag.Finite("notify-max-age").pipe(
    Flag.optional,
    Flag.withDescription(
      `hours a message an earlier session could not deliver (kept in <run-dir>/notify) may wait to be posted (default ${Notify.MAX_AGE_HOURS}); ` +
        `an older one is not posted, but said and moved to <run-dir>/notify/expired`
    )
  )
}

/** The webhooks of `--notify` and {@link Notify.ENV}, checked (each named), or `undefined` when none is given. */
const notifyOf = (flags: { readonly notify: ReadonlyArray<Redacted.Redacted<string>>; readonly notifyBest: boolean; readonly notifyMaxAge: Option.Option<number> }) =>
  Effect.gen(function*() {
    const maxAge = Option.getOrUndefined(flags.notifyMaxAge)
    if (maxAge !== undefined && !(maxAge > 0)) return yield* new Errors.InvalidInput({ source: "--notify-max-age", message: `--notify-max-age is in hours and must be more than 0, got ${maxAge}: e.g. --notify-max-age 168 (a week)` })
    const given = yield* Effect.forEach(flags.notify, (u, i) => Notify.parseUrl(u, flags.notify.length === 1 ? "--notify" : `--notify (its address ${i + 1})`))
    const urls = [...given, ...(yield* Notify.fromEnv(process.env[Notify.ENV]))]
    if (urls.length === 0) {
      if (flags.notifyBest) return yield* new Errors.InvalidInput({ source: "--notify-best", message: `--notify-best posts to the webhooks of --notify or ${Notify.ENV}, and none is given: give one, e.g. --notify https://hooks.slack.com/services/...` })
      if (maxAge !== undefined) return yield* new Errors.InvalidInput({ source: "--notify-max-age", message: `--notify-max-age bounds what the webhooks of --notify or ${Notify.ENV} are posted, and none is given: give one, e.g. --notify https://hooks.slack.com/services/...` })
      return undefined
    }
    return { urls, ...(flags.notifyBest ? { best: true } : {}), ...(maxAge !== undefined ? { maxAgeHours: maxAge } : {}) } satisfies Notify.Options
  })

/** `--detach`: this command again as a controller of its own session, its output in `log` until it has its run directory; say where the run is, and how to follow and stop it. */
const detached = (log: string) =>
  Detach.launch(log).pipe(
    Effect.flatMap(({ log, pid, runDir }) =>
      out([
        `run directory: ${runDir}`,
        `running in the background: controller process ${pid}, its output in ${log}`,
        `follow it:  trex status ${runDir} --follow`,
        `stop it:    trex stop ${runDir}`
      ].join("\n"))
    ),
    // it failed before it had a run directory (bad input, a run another controller holds): what it said, and its exit code
    Effect.catchTag("DetachedExited", (e) =>
      Effect.sync(() => {
        process.stderr.write(e.printed)
        process.exitCode = e.code
      }))
  )

const taskFile = Argument.String("task-file").pipe(Argument.withDescription("a task file (YAML or JSON)"))
const runDirArg = Argument.String("run-dir").pipe(Argument.withDescription("a run directory, e.g. trex-runs/<run-id>"))

const runCommand = Command.make(
  "run",
  {
    taskFile,
    backend: Flag.Literals("backend", Settings.BackendKind.literals).pipe(
      Flag.optional,
      Flag.withDescription(`where jobs run: local processes, the simulator, Docker, Slurm, Grid Engine, SSH or Kubernetes (default: the task file's backend.kind, else ${Settings.defaults.backend})`)
    ),
    researcher: Flag.Literals("researcher", Settings.ResearcherKind.literals).pipe(defaulted(Settings.defaults.researcher, "who proposes strategies: the offline heuristic, a model, or a baseline")),
    executor: Flag.Literals("executor", Settings.ExecutorKind.literals).pipe(defaulted(Settings.defaults.executor, "who turns a strategy into a job: the task's recipe template, or a code agent")),
    policy: Flag.Literals("policy", Settings.PolicyKind.literals).pipe(defaulted(Settings.defaults.policy, "the search policy that picks the node to expand")),
    scheduler: Flag.Literals("scheduler", Settings.SchedulerKind.literals).pipe(defaulted(Settings.defaults.scheduler, "early stopping of weak running trials")),
    modelApi: Flag.Literals("model-api", Settings.ModelApi.literals).pipe(defaulted(Settings.defaults.modelApi, "the API a model-backed agent speaks")),
    concurrency: Flag.Int("concurrency").pipe(defaulted(Settings.defaults.concurrency, "experiments in flight at once")),
    maxTrials: Flag.Int("max-trials").pipe(Flag.optional, Flag.withDescription("stop after this many trials (overrides the task's budget)")),
    ...limitFlags("(overrides the task's)"),
    seed: Flag.Int("seed").pipe(defaulted(0, "seed of the policy and the offline agents; same seed, same tree")),
    out: Flag.String("out").pipe(defaulted("trex-runs", "directory that holds run directories")),
    stagnation: Flag.Int("stagnation").pipe(Flag.optional, Flag.withDescription("stop after this many finished trials without improvement (results reused from earlier runs are not trials)")),
    failFast: Flag.Int("fail-fast").pipe(
      Flag.optional,
      Flag.withDescription("stop the run once this many trials have failed the same way and none succeeded, or twice as many one after another once some did: a setup error, or one that broke under the run, not the strategies' (default 3; 0 turns it off)")
    ),
    noReuse: Flag.Boolean("no-reuse").pipe(Flag.withDefault(false), Flag.withDescription("run every strategy, even one an earlier run in --out of the same task and trainer code has a result for")),
    maxRetryAfter: maxRetryAfterFlag(""),
    ...modelCallFlags(""),
    ...ResearcherFlags.flags(""),
    ...notifyFlags,
    detach: detachFlag
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.concurrency < 1) return yield* new Errors.InvalidInput({ source: "--concurrency", message: "--concurrency must be at least 1" })
      for (const [flag, value] of [["--max-trials", flags.maxTrials], ["--stagnation", flags.stagnation]] as const) {
        if (Option.isSome(value) && value.value < 1) return yield* new Errors.InvalidInput({ source: flag, message: `${flag} must be at least 1, got ${value.value}` })
      }
      if (Option.isSome(flags.failFast) && flags.failFast.value < 0) {
        return yield* new Errors.InvalidInput({ source: "--fail-fast", message: `--fail-fast must be 0 (off) or more, got ${flags.failFast.value}` })
      }
      const budget = yield* limitsOf(flags)
      const maxRetryAfter = yield* maxRetryAfterOf(flags.maxRetryAfter)
      const modelCall = yield* modelCallOf(flags)
      const researcherRetry = yield* ResearcherFlags.of(flags)
      const notify = yield* notifyOf(flags)
      // the live view's setting, checked before the run directory is made
      yield* (yield* load.liveView).ambiguousWidth(process.env, { tty: undefined })
      if (flags.detach && !Detach.isDetachedController()) return yield* detached(Detach.pendingLog(flags.out))
      const Trex = yield* load.trex
      const prepared = yield* Trex.prepare({
        taskFile: flags.taskFile,
        out: flags.out,
        seed: flags.seed,
        ...(Option.isSome(flags.backend) ? { backend: flags.backend.value } : {}),
        researcher: flags.researcher,
        executor: flags.executor,
        policy: flags.policy,
        scheduler: flags.scheduler,
        modelApi: flags.modelApi,
        concurrency: flags.concurrency,
        ...(Option.isSome(flags.maxTrials) ? { maxTrials: flags.maxTrials.value } : {}),
        ...(budget !== undefined ? { budget } : {}),
        ...(Option.isSome(flags.stagnation) ? { stagnation: flags.stagnation.value } : {}),
        ...(Option.isSome(flags.failFast) ? { failFast: flags.failFast.value } : {}),
        ...maxRetryAfter,
        ...modelCall,
        ...researcherRetry,
        ...(flags.noReuse ? { reuse: false } : {})
      })
      yield* execute(prepared, notify)
    })
).pipe(Command.withDescription("start a search on a task file"))

const resumeCommand = Command.make(
  "resume",
  {
    runDir: runDirArg,
    maxTrials: Flag.Int("max-trials").pipe(Flag.optional, Flag.withDescription("the run's trial budget from here on, e.g. more trials for a finished run (default: the budget it has)")),
    ...limitFlags("from here on (default: the budget it has)"),
    failFast: Flag.Int("fail-fast").pipe(
      Flag.optional,
      Flag.withDescription("for this session: stop once this many trials have failed the same way and none succeeded (twice as many in a row after some did); 0 turns the stop off, and trials that failed alike are not run again (default: the run's)")
    ),
    maxRetryAfter: maxRetryAfterFlag(", for this session (default: the run's)"),
    ...modelCallFlags(", for this session (default: the run's)"),
    ...ResearcherFlags.flags(", for this session (default: the run's)"),
    ...notifyFlags,
    detach: detachFlag
  },
  (flags) =>
    Effect.gen(function*() {
      const { failFast, maxTrials, runDir } = flags
      if (Option.isSome(maxTrials) && maxTrials.value < 1) return yield* new Errors.InvalidInput({ source: "--max-trials", message: `--max-trials must be at least 1, got ${maxTrials.value}` })
      if (Option.isSome(failFast) && failFast.value < 0) {
        return yield* new Errors.InvalidInput({ source: "--fail-fast", message: `--fail-fast must be 0 (off) or more, got ${failFast.value}` })
      }
      const budget = yield* limitsOf(flags)
      const maxRetryAfter = yield* maxRetryAfterOf(flags.maxRetryAfter)
      const modelCall = yield* modelCallOf(flags)
      const researcherRetry = yield* ResearcherFlags.of(flags)
      const notify = yield* notifyOf(flags)
      yield* (yield* load.liveView).ambiguousWidth(process.env, { tty: undefined })
      if (flags.detach && !Detach.isDetachedController()) {
        // a run's own folder holds its controller's output; a folder that is no run gets its message from the controller
        const isDir = fs.statSync(runDir, { throwIfNoEntry: false })?.isDirectory() === true
        return yield* detached(isDir ? Detach.logFile(runDir) : Detach.pendingLog(os.tmpdir()))
      }
      const Trex = yield* load.trex
      // (handed from prepare to execute, not kept here: the run's entries are let go of once replayed)
      yield* Effect.flatMap(
        Trex.prepare({
          resume: runDir,
          ...(Option.isSome(maxTrials) ? { maxTrials: maxTrials.value } : {}),
          ...(budget !== undefined ? { budget } : {}),
          ...(Option.isSome(failFast) ? { failFast: failFast.value } : {}),
          ...maxRetryAfter,
          ...modelCall,
          ...researcherRetry
        }),
        (prepared) => execute(prepared, notify)
      )
    })
).pipe(Command.withDescription("continue a stopped or killed run where it left off (--max-trials, --gpu-hours, --wall-clock-hours, --dollars, --tokens: with a new limit of its budget)"))

const statusCommand = Command.make(
  "status",
  {
    runDir: runDirArg,
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the run (or with --node, the trial) as JSON; with --follow, each journal entry as a line of JSON")),
    node: Flag.String("node").pipe(
      Flag.optional,
      Flag.withDescription("show one trial (e.g. n7): its strategy and what it changed, its jobs, result or failure, and its job's last log lines")
    ),
    follow: Flag.Boolean("follow").pipe(
      Flag.withAlias("f"),
      Flag.withDefault(false),
      Flag.withDescription("follow a run another shell (or --detach) is running, as its live view, until its controller exits; Ctrl-C stops following, not the run")
    )
  },
  ({ follow, json, node, runDir }) =>
    Effect.gen(function*() {
      if (follow) {
        if (Option.isSome(node)) {
          return yield* new Errors.InvalidInput({
            source: "--follow",
            message: `--follow follows the whole run, --node shows one trial: use one of them (\`trex status ${runDir} --follow\`, then \`trex status ${runDir} --node ${node.value}\`)`
          })
        }
        return yield* followRun(runDir, json)
      }
      // a damaged run is shown up to its damage (the message says where it is, and what to do)
      const info = yield* RunDir.load(runDir, { damaged: true })
      if (Option.isNone(node)) {
        if (json) return yield* out(JSON.stringify({ ...Status.toJson(info), ...Status.settingsJson(info), webhooks: Notify.statusJson(runDir, info.entries) }, null, 2))
        // webhook messages an earlier session could not deliver (kept in the run directory)
        const webhooks = [Notify.waiting(runDir, undefined, info.entries), Notify.expired(runDir)].filter((l) => l !== undefined)
        return yield* out(`${Status.toText(info, runDir)}${webhooks.map((l) => `\nWebhooks: ${l}`).join("")}`)
      }
      const id = node.value.trim()
      if (info.tree.view.get(id) === undefined) {
        const size = info.tree.view.size
        return yield* new Errors.InvalidInput({
          source: "--node",
          message: `run ${info.started.runId} has no trial "${node.value}": ${size === 0 ? "it has no trials yet" : `its trials are n1 to n${size}`} (\`trex status ${runDir}\` shows its tree)`
        })
      }
      const dir = path.join(RunDir.jobsDir(runDir), id)
      const logs = fs.existsSync(dir) ? LogTails.shown(RunDir.jobsDir(runDir), [id], info.tree.view.task) : undefined
      const files = logs !== undefined ? { dir, tail: logs.tails[id] ?? [], ...(logs.withheld !== undefined ? { withheld: logs.withheld } : {}) } : undefined
      const trial = Status.trialJson(info, id, files)!
      yield* out(json ? JSON.stringify(trial, null, 2) : Status.trialText(trial, info.tree.view.task.metric.name))
    })
).pipe(Command.withDescription("show a run: tree, best node, budget used, insights; with --node, one trial in full; with --follow, as it goes on"))

/**
 * `trex status --follow`: the run's live view (or with `json`, every journal entry as a line of
 * JSON) as its controller writes it, until the controller exits; the first Ctrl-C stops following.
 */
const followRun = (runDir: string, json: boolean) =>
  Effect.gen(function*() {
    const LiveView = yield* load.liveView
    const view = LiveView.make({
      tty: !json && process.stdout.isTTY === true,
      write: (s) => process.stdout.write(s),
      columns: () => process.stdout.columns,
      ...yield* LiveView.terminalWidths()
    })
    const line = (entry: { readonly seq: number; readonly event: JournalEvent.JournalEvent }) =>
      process.stdout.write(`${JSON.stringify({ seq: entry.seq, event: JournalEvent.encode(entry.event) })}\n`)
    let stopped = false
    const outcome = yield* Effect.scoped(Effect.gen(function*() {
      yield* StopSignal.onFirstSignal(() => void (stopped = true))
      return yield* Follow.follow(runDir, {
        onStart: (info) => {
          if (json) return info.entries.forEach(line)
          if (info.writer === undefined) return
          // (as `trex status` names it: a container's of a host name of its own is on this machine)
          process.stdout.write(
            `following run ${info.started.runId} (controller: ${info.writer.pid === undefined ? "process unknown" : processOf(info.writer)}); ` +
              `Ctrl-C stops following, not the run (\`trex stop ${runDir}\` stops the run)\n`
          )
          view.prime(info.entries, info.tree.view.task.budget)
          view.attach(info.tree.view)
        },
        onEntry: (entry, tree) => (json ? line(entry) : view.onEvent(entry, tree))
      }, { stopped: () => stopped }).pipe(Effect.ensuring(Effect.sync(() => view.close())))
    }))
    if (json) return
    const { info } = outcome
    const said = outcome._tag === "NotRunning"
      ? `nobody is running this run now: nothing to follow${Status.runState(info) === "stopped" ? ` (\`trex resume ${runDir}\` continues it)` : ""}`
      : outcome._tag === "Stopped"
      ? `stopped following; the run goes on (\`trex status ${runDir} --follow\` follows it again, \`trex stop ${runDir}\` stops it)`
      : "the run's controller has exited"
    yield* out(`${outcome._tag === "NotRunning" ? "" : "\n"}${said}\n\n${Status.toText(info, runDir)}`)
  })

const stopCommand = Command.make(
  "stop",
  {
    runDir: runDirArg,
    now: Flag.Boolean("now").pipe(
      Flag.withDefault(false),
      Flag.withDescription("cancel the running trials too (they run again, from the start, on resume), as a second Ctrl-C does")
    ),
    wait: Flag.Boolean("wait").pipe(Flag.withDefault(false), Flag.withDescription("wait until the controller has exited, then show the run"))
  },
  ({ now, runDir, wait }) =>
    Effect.gen(function*() {
      const outcome = yield* RunDir.stopController(runDir, { now, ...(wait ? { wait: Duration.infinity } : {}) })
      if (outcome._tag === "NotRunning") {
        const info = yield* RunDir.load(runDir, { damaged: true })
        const state = Status.runState(info)
        const held = outcome.held !== undefined ? `. It is ${RunDir.heldBy(outcome.held, "trex resume can take it")}` : ""
        return yield* out(
          state === "finished"
            ? `the run in ${runDir} is not running: it finished (${info.finished?.reason ?? "?"}); nothing to stop${held}`
            : `the run in ${runDir} is not running (it was stopped before it finished); nothing to stop. Continue it with: trex resume ${runDir}${held}`
        )
      }
      if (outcome.exited) {
        const info = yield* RunDir.load(runDir, { damaged: true })
        return yield* out([`the run's controller (process ${outcome.pid}) has stopped.`, "", Status.toText(info, runDir)].join("\n"))
      }
      yield* out(
        now
          ? `asked the run's controller (process ${outcome.pid}) to stop now: it cancels its running trials (they run again, from the start, on resume). ` +
            `\`trex status ${runDir}\` shows when it has stopped; continue with: trex resume ${runDir}`
          : `asked the run's controller (process ${outcome.pid}) to stop: it starts no new trial, and lets the running ones finish (their results are kept; ` +
            `those still waiting in the backend's queue are withdrawn and run on resume). \`trex stop ${runDir} --now\` cancels them instead; ` +
            `\`trex status ${runDir}\` shows when it has stopped; continue with: trex resume ${runDir}`
      )
    })
).pipe(Command.withDescription("stop a run's controller from another shell, as Ctrl-C does: running trials finish (--now: cancelled); trex resume continues it"))

const notifyCommand = Command.make(
  "notify",
  {
    runDir: runDirArg,
    retryExpired: Flag.Boolean("retry-expired").pipe(
      Flag.withDefault(false),
      Flag.withDescription(`post the run's messages found too old to post (<run-dir>/notify/expired) now, as they were kept, to the webhooks of --notify or ${Notify.ENV}; those every webhook got are removed`)
    ),
    dropExpired: Flag.Boolean("drop-expired").pipe(Flag.withDefault(false), Flag.withDescription("remove the run's messages found too old to post (<run-dir>/notify/expired), unposted")),
    notify: Flag.Redacted("notify").pipe(
      Flag.atLeast(0),
      Flag.withDescription(`with --retry-expired: a webhook to post them to; give it again for more (${Notify.ENV} adds more, out of the process list)`)
    ),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print what was done as JSON: posted, kept, dropped and unreadable"))
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.retryExpired === flags.dropExpired) {
        return yield* new Errors.InvalidInput({
          source: flags.retryExpired ? "--drop-expired" : "--retry-expired",
          message: `${flags.retryExpired ? "--retry-expired and --drop-expired are two ways to deal with the same messages: give one" : "give --retry-expired (post them now) or --drop-expired (remove them)"}: ` +
            `e.g. trex notify ${flags.runDir} --retry-expired --notify https://hooks.slack.com/services/...`
        })
      }
      if (!fs.existsSync(RunDir.journalFile(flags.runDir))) {
        return yield* new Errors.InvalidInput({ source: "run-dir", message: `${flags.runDir} is not a run directory (it has no ${path.basename(RunDir.journalFile(flags.runDir))}): give one, e.g. trex-runs/<run-id> (trex list shows them)` })
      }
      const given = yield* Effect.forEach(flags.notify, (u, i) => Notify.parseUrl(u, flags.notify.length === 1 ? "--notify" : `--notify (its address ${i + 1})`))
      const urls = [...given, ...(yield* Notify.fromEnv(process.env[Notify.ENV]))]
      if (flags.retryExpired && urls.length === 0) {
        return yield* new Errors.InvalidInput({ source: "--notify", message: `--retry-expired posts to the webhooks of --notify or ${Notify.ENV}, and none is given: give one, e.g. --notify https://hooks.slack.com/services/...` })
      }
      if (flags.dropExpired && urls.length > 0) {
        return yield* new Errors.InvalidInput({ source: "--notify", message: "--drop-expired posts nothing, and a webhook is given: leave out --notify (and TREX_NOTIFY_URL), or give --retry-expired to post the messages" })
      }
      const outcome = flags.retryExpired ? yield* Notify.retryExpired(flags.runDir, { urls }) : yield* Notify.dropExpired(flags.runDir)
      yield* out(flags.json ? JSON.stringify(outcome, null, 2) : Notify.expiredOutcomeText(flags.runDir, outcome))
      if (outcome.kept.length > 0) yield* Effect.sync(() => void (process.exitCode = 1))
    })
).pipe(Command.withDescription("deal with a run's webhook messages found too old to post (trex status shows them): post them now (--retry-expired) or remove them (--drop-expired)"))

const checkCommand = Command.make(
  "check",
  {
    taskFile,
    backend: Flag.Literals("backend", Settings.BackendKind.literals).pipe(
      Flag.optional,
      Flag.withDescription(`the backend to check, as trex run --backend (default: the task file's backend.kind, else ${Settings.defaults.backend})`)
    ),
    researcher: Flag.Literals("researcher", Settings.ResearcherKind.literals).pipe(defaulted(Settings.defaults.researcher, "as trex run --researcher")),
    executor: Flag.Literals("executor", Settings.ExecutorKind.literals).pipe(defaulted(Settings.defaults.executor, "as trex run --executor")),
    modelApi: Flag.Literals("model-api", Settings.ModelApi.literals).pipe(defaulted(Settings.defaults.modelApi, "as trex run --model-api")),
    concurrency: Flag.Int("concurrency").pipe(defaulted(Settings.defaults.concurrency, "as trex run --concurrency")),
    timeout: Flag.Finite("timeout").pipe(defaulted(30, "seconds the backend has to answer")),
    callModel: Flag.Boolean("call-model").pipe(
      Flag.withDefault(false),
      Flag.withDescription(
        "with --researcher claude or --executor code-agent: ask the model a 1-token turn too, billed (a few tokens), to check that the key may call it where no free call shows it " +
          "(an OpenAI-compatible server, a gateway without count_tokens); without it the check costs nothing"
      )
    ),
    // the model's flags of trex run, so that a check takes the flags its run will: the model is asked once (no retry),
    // each attempt bounded by --model-timeout and --timeout, a wait its server asks for by --max-retry-after
    maxRetryAfter: maxRetryAfterFlag(", as trex run (--call-model's turn: a longer one fails the check)"),
    ...modelCallFlags(", as trex run (the check asks the model once, within --model-timeout and --timeout)"),
    // and the researcher's, checked as a run's (the check asks no researcher to propose: nothing to retry)
    ...ResearcherFlags.flags(", as trex run (checked; the check asks no researcher to propose)"),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the findings as JSON"))
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.concurrency < 1) return yield* new Errors.InvalidInput({ source: "--concurrency", message: "--concurrency must be at least 1" })
      if (!(flags.timeout > 0)) return yield* new Errors.InvalidInput({ source: "--timeout", message: `--timeout must be more than 0 seconds, got ${flags.timeout}` })
      const maxRetryAfter = yield* maxRetryAfterOf(flags.maxRetryAfter)
      const modelCall = yield* modelCallOf(flags)
      const researcherRetry = yield* ResearcherFlags.of(flags)
      if (flags.callModel && flags.researcher !== "claude" && flags.executor !== "code-agent") {
        return yield* new Errors.InvalidInput({
          source: "--call-model",
          message: "--call-model asks the model that a model-backed agent calls, and these settings have none: give it with --researcher claude or --executor code-agent"
        })
      }
      const Check = yield* load.check
      const report = yield* Check.run({
        taskFile: flags.taskFile,
        ...(Option.isSome(flags.backend) ? { backend: flags.backend.value } : {}),
        researcher: flags.researcher,
        executor: flags.executor,
        modelApi: flags.modelApi,
        concurrency: flags.concurrency,
        ...maxRetryAfter,
        ...modelCall,
        ...researcherRetry
      }, Duration.seconds(flags.timeout), { callModel: flags.callModel })
      yield* out(flags.json ? JSON.stringify(report, null, 2) : Check.toText(report, flags.taskFile))
      if (!report.ok) yield* Effect.sync(() => void (process.exitCode = 1))
    })
).pipe(Command.withDescription("check a task file and its backend before a run: the task, its secrets and model key, the backend's answer and room, the job a trial runs; writes nothing"))

const listCommand = Command.make(
  "list",
  {
    folder: Argument.String("folder").pipe(
      Argument.withDefault("trex-runs"),
      Argument.withDescription("a folder of runs: trex run's --out (default trex-runs)")
    ),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the runs as JSON"))
  },
  ({ folder, json }) =>
    Effect.gen(function*() {
      const runs = yield* Runs.list(folder)
      yield* out(json ? JSON.stringify(runs, null, 2) : Runs.toText(folder, runs))
    })
).pipe(Command.withDescription("list the runs in a folder of runs (default trex-runs): each one's task, base model, state, trials, best score and settings (backend/researcher/policy)"))

const reportCommand = Command.make(
  "report",
  { runDir: runDirArg, html: Flag.Boolean("html").pipe(Flag.withDefault(false), Flag.withDescription("a self-contained HTML report instead of Markdown")) },
  ({ html, runDir }) =>
    Effect.gen(function*() {
      const info = yield* RunDir.load(runDir, { damaged: true })
      if (info.damage !== undefined) {
        yield* Effect.sync(() => process.stderr.write(`trex: ${info.damage!.message}. The report shows the ${info.entries.length} entries before the damage\n`))
      }
      if (html) {
        const file = path.join(runDir, "report.html")
        // no controller writes it: its trials in flight (a drain withdrew them, or a kill left them) are interrupted
        const stopped = Status.runState(info) !== "running"
        const logs = LogTails.shown(RunDir.jobsDir(runDir), info.tree.ids(), info.tree.view.task)
        if (logs.withheld !== undefined) yield* Effect.sync(() => process.stderr.write(`trex: ${logs.withheld}\n`))
        const HtmlReport = yield* load.htmlReport
        yield* writeReport(
          file,
          HtmlReport.render({
            entries: info.entries,
            logs: logs.tails,
            stopped,
            ...(logs.withheld !== undefined ? { logsWithheld: logs.withheld } : {}),
            ...(info.damage !== undefined ? { damage: info.damage.message } : {})
          })
        )
        yield* out(file)
      } else {
        const file = path.join(runDir, "report.md")
        yield* writeReport(file, Status.toMarkdown(info))
        yield* out(file)
      }
    })
).pipe(Command.withDescription("write a Markdown (or with --html, a self-contained HTML) report of a run"))

const benchCommand = Command.make(
  "bench",
  {
    tasks: Flag.String("task").pipe(Flag.atLeast(1), Flag.withDescription("a recorded-table task file (repeatable)")),
    policies: Flag.String("policies").pipe(defaulted(
      "uct,greedy,random,tpe",
      "comma-separated methods: uct, puct, greedy, best-first, random, tpe; add +asha to run one with ASHA early stopping as trex run --scheduler asha does (uct+asha), on tables with a curve"
    )),
    seeds: Flag.Int("seeds").pipe(defaulted(20, "runs per method, the same seeds for every method")),
    firstSeed: Flag.Int("first-seed").pipe(defaulted(0, "the first seed: runs use seeds first-seed .. first-seed + seeds - 1 (fresh seeds check a change tuned on others)")),
    trials: Flag.String("trials").pipe(defaulted("5,10,20,30", "comma-separated trial counts at which regret is reported")),
    gpuHours: Flag.String("gpu-hours").pipe(
      Flag.optional,
      Flag.withDescription("comma-separated simulated GPU-hours at which regret is also reported (runs go on until the largest is spent)")
    ),
    concurrency: Flag.Int("concurrency").pipe(
      defaulted(1, "trials in flight at once, on as many simulated GPUs (regret at N counts trials in the order they finish)")
    ),
    versus: Flag.String("versus").pipe(
      Flag.optional,
      Flag.withDescription("one of the methods: also print every other method's mean regret as a ratio of its, with 95 % intervals from resampling the seeds in pairs")
    ),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("print the results as JSON"))
  },
  (flags) =>
    Effect.gen(function*() {
      const Bench = yield* load.bench
      const methods = yield* Bench.parseMethods(flags.policies)
      const versus = Option.getOrUndefined(flags.versus)
      if (versus !== undefined && !(methods as ReadonlyArray<string>).includes(versus)) {
        return yield* new Errors.InvalidInput({
          source: "--versus",
          message: `--versus: ${versus} is not one of the methods compared (--policies ${methods.join(",")}); name one of them`
        })
      }
      const trials = yield* Bench.parseTrials(flags.trials)
      const gpuHours = Option.isSome(flags.gpuHours) ? yield* Bench.parseHours(flags.gpuHours.value) : []
      if (flags.seeds < 1) return yield* new Errors.InvalidInput({ source: "--seeds", message: "--seeds must be at least 1" })
      if (flags.concurrency < 1) {
        return yield* new Errors.InvalidInput({ source: "--concurrency", message: `--concurrency must be at least 1, got ${flags.concurrency}` })
      }
      if (flags.firstSeed < 0) {
        return yield* new Errors.InvalidInput({ source: "--first-seed", message: `--first-seed must be 0 or more, got ${flags.firstSeed}` })
      }
      // every task file and table read and checked before the first run, so a bad one is said at once
      const prepared: Array<Bench.Prepared> = []
      for (const file of flags.tasks) prepared.push(yield* Bench.prepareTask(file, { methods, gpuHours }))
      const results: Array<Bench.TaskResult> = []
      for (const task of prepared) {
        const r = yield* Bench.benchTask(task, {
          methods,
          seeds: flags.seeds,
          firstSeed: flags.firstSeed,
          trials,
          gpuHours,
          concurrency: flags.concurrency,
          // progress on stderr (a long comparison runs for many minutes); stdout keeps only the results
          onMethod: (task, method, seconds) => process.stderr.write(`${task}: ${method} done in ${seconds.toFixed(1)} s\n`)
        })
        results.push(r)
        yield* Effect.sync(() => process.stderr.write(`${r.task}: done (${r.rows} configurations, seeds ${r.firstSeed}..${r.firstSeed + r.seeds - 1})\n`))
      }
      const ratios = versus !== undefined ? `\n\n${Bench.toRatioTable(results, trials, versus)}` : ""
      yield* out(flags.json ? JSON.stringify(results, null, 2) : Bench.toTable(results, trials, gpuHours) + ratios)
    })
).pipe(Command.withDescription("compare search methods on recorded training-run tables, in simulated time"))

/** @since 0.1.0 @category commands */
export const command = Command.make("trex").pipe(
  Command.withDescription("TREX: automate LLM fine-tuning by agent-driven tree search"),
  Command.withSubcommands([runCommand, checkCommand, resumeCommand, statusCommand, listCommand, stopCommand, notifyCommand, reportCommand, benchCommand])
)

