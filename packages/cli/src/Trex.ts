/**
 * The embedding API: start, observe, pause, resume and stop a search from an application's own
 * code. The same wiring as the `trex` CLI (task file, backend, researcher, executor, policy), with
 * an event stream instead of a terminal.
 *
 * Effect users call {@link search} and get a scoped {@link Search}; everyone else calls
 * {@link start} and gets promises and an async iterator.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Budget, Cost, Errors, type JournalEvent, OptionSpec, Researcher, type Task, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { type Asha, Control, Explorer, ResultCache } from "@trex/mcts"
import { Clock, Deferred, Duration, Effect, LogLevel, Queue, References, Schema, type Scope, Stream } from "effect"
import { codeFingerprint, runFingerprint } from "./internal/codeFingerprint.ts"
import { HandOver } from "./internal/handOver.ts"
import { MAX_MODEL_TIMEOUT_SECONDS } from "./internal/modelLimits.ts"
import { writeReportFile } from "./internal/reportFile.ts"
import * as SessionSettings from "./internal/sessionSettings.ts"
import * as Notify from "./Notify.ts"
import * as RunDir from "./RunDir.ts"
import * as Settings from "./Settings.ts"
import * as Status from "./Status.ts"
import * as Wiring from "./Wiring.ts"

/**
 * What to run: a task file (or a decoded task and its directory) and the wiring; or, with
 * `resume`, a run to continue (and, optionally, new limits of its budget: `maxTrials`, `budget`).
 * Checked before anything is written: a value of the wrong type or an unknown key fails with
 * `InvalidInput` naming the field.
 * @since 0.1.0 @category models
 */
export interface Options extends Partial<Omit<Settings.Settings, "taskFile" | "taskDir" | "code">> {
  /** Where trials run; default: the task's `backend.kind`, else `local`. */
  readonly backend?: Settings.Settings["backend"]
  readonly taskFile?: string
  /** A task object instead of a file; `taskDir` resolves its relative paths (default: cwd). */
  readonly task?: Task.TaskEncoded
  readonly taskDir?: string
  /** Where runs go (default `trex-runs`). */
  readonly out?: string
  /**
   * Continue this run directory instead of starting a new one, with the settings it started with
   * (give no others but `maxTrials`, `budget`, and for this session `failFast`, `maxRetryAfterSeconds`, the model's
   * `modelMaxRetries`, `modelRetryDelaySeconds`, `modelMaxRetryDelaySeconds`, `modelTimeoutSeconds` and the researcher's
   * `researcherRetries`, `researcherRetryDelaySeconds`; `paused` and `logLevel`). A recorded one of these that this trex
   * would not take as an option (a longer `modelTimeoutSeconds` than a model can wait, from an older trex or an edited
   * journal) is refused, naming it, unless given here.
   */
  readonly resume?: string
  readonly seed?: number
  /** The trial budget: of a new run, instead of the task's; with `resume`, the run's from here on. */
  readonly maxTrials?: number
  /**
   * Limits of the budget, each instead of the task's (a new run) or, with `resume`, of the run's from
   * here on (the limits not given are kept, and later resumes keep these): `{ gpuHours: 60 }` gives a
   * run that ended on its GPU-hours more. A resume whose budget would still have a limit used up (it
   * would run nothing) is refused, naming that limit. `maxTrials` may be given here or on its own, not both.
   */
  readonly budget?: Budget.Budget
  /** Start paused: the run records its start, then starts no trial until `resume` is called. */
  readonly paused?: boolean
  /**
   * The least severe log entry the run writes (default `"Info"`; `"None"`: none). The run logs
   * only warnings and errors (a researcher that cannot propose, a trial whose executor failed, a
   * report it cannot write), to the current Effect logger: the console, unless one is provided.
   */
  readonly logLevel?: LogLevel.LogLevel
  /**
   * Post a message to these webhooks when the run ends, and with `best`, at each new best trial
   * (see {@link Notify}). Never recorded: a resumed run posts to the webhooks its own session gives,
   * first the messages an earlier session left undelivered (killed, or its webhook down), each under
   * the id it was first posted with.
   */
  readonly notify?: Notify.Options
}

/**
 * What each of {@link Options} takes, checked before anything is read or written: a value of the
 * wrong type (`maxTrials: "5"` from an untyped caller) and a key it does not know (a misspelt
 * `concurency`) fail with `InvalidInput` naming the field. `undefined` counts as left out; `task`
 * is checked as a task when it is read.
 */
const SPEC: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  taskFile: OptionSpec.nonEmptyString("the path of a task file (YAML or JSON)"),
  task: OptionSpec.unchecked,
  taskDir: OptionSpec.nonEmptyString("the directory the task's relative paths are resolved against"),
  // any string: an empty one is named by the check of the directory itself ("--out is empty")
  out: {
    issues: (v, path) => typeof v === "string" ? [] : [`${path}: expected the directory that holds run directories, e.g. "trex-runs", got ${OptionSpec.show(v)}`]
  },
  resume: OptionSpec.nonEmptyString("a run directory, e.g. \"trex-runs/20261122-031500-quickstart\""),
  seed: OptionSpec.integer(Number.MIN_SAFE_INTEGER, "e.g. 1"),
  maxTrials: OptionSpec.integer(1, "the trial budget, e.g. 5"),
  budget: OptionSpec.schema(Budget.Budget),
  backend: OptionSpec.literal(Settings.BackendKind.literals, "where trials run"),
  researcher: OptionSpec.literal(Settings.ResearcherKind.literals, "who proposes strategies"),
  executor: OptionSpec.literal(Settings.ExecutorKind.literals, "who turns a strategy into a job"),
  policy: OptionSpec.literal(Settings.PolicyKind.literals, "the search policy"),
  scheduler: OptionSpec.literal(Settings.SchedulerKind.literals, "early stopping"),
  modelApi: OptionSpec.literal(Settings.ModelApi.literals, "the model's API"),
  concurrency: OptionSpec.integer(1, "experiments in flight at once, e.g. 2"),
  distillEvery: OptionSpec.integer(0, "results between insight distillations; 0: never"),
  stagnation: OptionSpec.integer(1, "finished trials without improvement before the run stops"),
  failFast: OptionSpec.integer(0, "trials failed the same way, none succeeded (twice as many in a row after some did), before the run stops (a setup error); 0 turns it off"),
  maxRetryAfterSeconds: OptionSpec.number({ min: 0 }, "seconds: the longest wait a model server's retry-after may ask for and be waited out, e.g. 60"),
  modelMaxRetries: OptionSpec.integer(0, "retries of a model call that failed retryably, after its first attempt, e.g. 4"),
  modelRetryDelaySeconds: OptionSpec.number({ min: 0 }, "seconds: the first wait before a model call's retry, doubled each retry, e.g. 1"),
  modelMaxRetryDelaySeconds: OptionSpec.number({ min: 0 }, "seconds: the longest wait before a model call's retry but a longer retry-after, e.g. 30"),
  // at most 2^31 - 1 ms, the longest wait a timer keeps (the models' timeoutMs)
  modelTimeoutSeconds: OptionSpec.number({ above: 0, max: MAX_MODEL_TIMEOUT_SECONDS }, "seconds one attempt of a model call may take, e.g. 600"),
  researcherRetries: OptionSpec.integer(0, "times a researcher that failed retryably is asked again before the run stops, e.g. 3"),
  researcherRetryDelaySeconds: {
    issues: (v, path) =>
      typeof v === "number" && Researcher.retryDelayMillis(v * 1000) !== undefined ? [] : [Researcher.retryDelayIssue(path, v, "seconds", "2")]
  },
  reuse: OptionSpec.boolean("reuse the results of earlier runs"),
  paused: OptionSpec.boolean("start paused"),
  logLevel: OptionSpec.literal(LogLevel.values, "the least severe log entry written"),
  notify: Notify.rule
}

/** The options a resumed run takes; the others are the run's own, recorded when it started. */
const modelKeys = [
  "maxRetryAfterSeconds",
  "modelMaxRetries",
  "modelRetryDelaySeconds",
  "modelMaxRetryDelaySeconds",
  "modelTimeoutSeconds",
  "researcherRetries",
  "researcherRetryDelaySeconds"
] as const
const resumeKeys: ReadonlyArray<string> = ["resume", "maxTrials", "budget", "failFast", ...modelKeys, "paused", "logLevel", "notify"]

/** The model's and the researcher's settings among options (how they retry and wait), those given. */
const modelSettings = (options: Options): Partial<Pick<Settings.Settings, typeof modelKeys[number]>> =>
  Object.fromEntries(modelKeys.flatMap((k) => (options[k] !== undefined ? [[k, options[k]]] : [])))

/** Check options before anything is read or written: each bad field named, with what it takes. */
const checkOptions = (options: unknown): Effect.Effect<Options, Errors.InvalidInput> =>
  Effect.gen(function*() {
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      return yield* invalid("options", `the options are ${OptionSpec.show(options)}: give an object, e.g. { taskFile: "task.yaml", maxTrials: 5 }`)
    }
    const given = options as Record<string, unknown>
    const issues = OptionSpec.issues(SPEC, options)
    if (issues.length > 0) {
      // one issue: its field is the source; several: the options
      const source = issues.length === 1 ? /^(\w+):/.exec(issues[0]!)?.[1] ?? "options" : "options"
      return yield* invalid(source, `invalid options:\n${issues.map((l) => `  ${l}`).join("\n")}`)
    }
    const set = (key: string) => given[key] !== undefined
    if (set("maxTrials") && (given["budget"] as Budget.Budget | undefined)?.maxTrials !== undefined) {
      return yield* invalid("maxTrials", "maxTrials is given twice, on its own and in budget: give it once")
    }
    if (set("resume")) {
      const extra = Object.keys(given).filter((k) => set(k) && !resumeKeys.includes(k))
      if (extra.length > 0) {
        return yield* invalid(
          extra[0]!,
          `a resumed run keeps the task and settings it started with: leave out ${extra.join(", ")} (with resume, only maxTrials, budget, failFast, ${modelKeys.join(", ")}, paused, logLevel and notify may be given)`
        )
      }
    } else if (set("taskFile") && set("task")) {
      return yield* invalid("task", "give taskFile or task, not both")
    } else if (!set("taskFile") && !set("task")) {
      return yield* invalid("options", "give taskFile (the path of a task file), task (a task object) or resume (a run directory)")
    }
    return options as Options
  })

/** A prepared run: the task, its settings and where it lives. @since 0.1.0 @category models */
export interface Prepared {
  readonly task: Task.Task
  readonly settings: Settings.Settings
  readonly runDir: string
  readonly runId: string
  readonly seed: number
  /** A resumed run's new budget (`maxTrials` or `budget` given with `resume`), journaled when the run resumes. */
  readonly budget?: Budget.Budget
  /**
   * A resumed run's settings given for recorded ones this trex does not take (a `modelTimeoutSeconds` of an older
   * trex): the run's from here on, journaled when the run resumes (`RunResumed.settings`).
   */
  readonly replaced?: Readonly<Record<string, number>>
  /** The recorded table a new simulated run read for its search space, which its backend then replays (not read again). */
  readonly landscape?: Simulator.Landscape
  /** Limits of the budget that cannot work as set (`Wiring.budgetWarnings`): logged as warnings when the run starts. */
  readonly warnings?: ReadonlyArray<string>
  /**
   * A resumed run's journal entries as `prepare` read them: the run and its live view start from
   * them instead of reading the journal again (only the entries journaled since are read).
   */
  readonly journaled?: ReadonlyArray<JournalEvent.Entry>
}

/**
 * Resolve options into a run: check the options, load and check the task, make the run's own
 * directory (a new one, never another run's), or read the one being resumed with the settings it
 * was started with.
 * @since 0.1.0 @category constructors
 */
export const prepare = (options: Options): Effect.Effect<Prepared, Errors.InvalidInput | Errors.JournalError> =>
  Effect.gen(function*() {
    yield* checkOptions(options)
    if (options.resume !== undefined) {
      const info = yield* RunDir.load(options.resume)
      yield* RunDir.checkWritable(options.resume)
      const settings = yield* recordedSettings(options.resume, info.started, SessionSettings.recordedOptions(info.started, info.entries))
      // what the session takes of them (not given now) within the options' limits: a model that cannot wait it refuses every call
      const outOfBounds = SessionSettings.recordedIssue(options.resume, settings, options, SPEC)
      if (outOfBounds !== undefined) return yield* outOfBounds
      // one given for a recorded setting this trex does not take becomes the run's: the next resume is not refused again
      const replaced = SessionSettings.replacing(settings, options, SPEC)
      yield* sameTrainer(options.resume, info.started.task, settings)
      // the budget as of the last resume that set one, with the limits given now
      const current = info.tree.view.task
      const given = limitsGiven(options)
      const budget = given !== undefined ? { ...current.budget, ...given } : undefined
      if (budget !== undefined) {
        const strict = Wiring.strictIssue(settings, { ...current, budget })
        if (strict !== undefined) return yield* strict
        yield* checkRoomLeft(options.resume, { ...current, budget }, info.entries)
      }
      const task = budget !== undefined ? { ...current, budget } : current
      yield* Wiring.secrets(task)
      const costKnown = info.entries.some((e) => e.event._tag === "BudgetCharged" && e.event.reason === "trial")
      const full = budget === undefined ? noRoomNotice(task, info.entries) : undefined
      const warnings = [...Wiring.budgetWarnings(settings, task, { costKnown }), ...(full !== undefined ? [full] : [])]
      return {
        task,
        // `failFast` given with `resume`: for this session (`0`: trials that failed alike were the strategies' own, not a setup error);
        // the model's settings too (`maxRetryAfterSeconds`: a wait the model's server asked for that stopped the run, waited out now)
        settings: {
          ...settings,
          ...(options.failFast !== undefined ? { failFast: options.failFast } : {}),
          ...modelSettings(options)
        },
        runDir: path.resolve(options.resume),
        runId: info.started.runId,
        seed: info.started.seed,
        ...(budget !== undefined ? { budget } : {}),
        ...(Object.keys(replaced).length > 0 ? { replaced } : {}),
        ...(warnings.length > 0 ? { warnings } : {}),
        journaled: info.entries
      }
    }
    const { landscape, settings, task } = yield* resolve(options)
    yield* Wiring.secrets(task)
    const out = options.out ?? "trex-runs"
    if (out === "") return yield* invalid("out", "the directory for runs (--out) is empty: name a directory, e.g. trex-runs")
    if (fs.existsSync(RunDir.journalFile(out))) {
      // a run directory given for the folder of runs: the new run would sit inside it, unlisted, reusing none of its results
      return yield* invalid(
        "out",
        `the directory for runs (--out) ${out} is a run directory, not a folder of runs: a new run there would sit inside that run, ` +
          `where \`trex list\` does not see it and no result of the runs beside it is reused. Give the folder that holds it (--out ${path.dirname(path.resolve(out))}) ` +
          `to start a new run beside it, or continue it with \`trex resume ${out}\``
      )
    }
    const now = new Date(yield* Clock.currentTimeMillis)
    // a directory of its own, even when another run of the task started in the same second
    const { runDir, runId } = yield* Effect.try({
      try: () => RunDir.create(out, task.name, now),
      catch: (e) => {
        const where = `cannot make the run directory ${path.resolve(out, RunDir.newRunId(task.name, now))} under ${out} (--out)`
        // a folder that cannot be made where its parent is (under /proc): said by RunDir.makeFolders, with its fix
        if (e instanceof Errors.InvalidInput) return invalid("out", `${where}: ${e.message}`)
        const full = Errors.noSpace(e)
        return full !== undefined && !full.includes("read-only")
          ? invalid("out", `${where}: ${full}: free space on the disk holding ${out}, or name a directory on another disk`)
          : invalid("out", `${where}: ${(e as NodeJS.ErrnoException).code ?? String(e)}: name a directory you can write`)
      }
    })
    const warnings = Wiring.budgetWarnings(settings, task)
    return {
      task,
      settings,
      runDir,
      runId,
      seed: options.seed ?? 0,
      ...(landscape !== undefined ? { landscape } : {}),
      ...(warnings.length > 0 ? { warnings } : {})
    }
  })

/**
 * A new run's task and settings from options, as {@link prepare} resolves them, without writing
 * anything: the options checked, the task loaded and checked, its settings wired and checked against
 * it, and a simulated run's table read (its secrets are not looked for: see `Wiring.secrets`).
 * @since 0.1.0 @category constructors
 */
export const resolve = (options: Options): Effect.Effect<
  { readonly task: Task.Task; readonly settings: Settings.Settings; readonly landscape?: Simulator.Landscape },
  Errors.InvalidInput
> =>
  Effect.gen(function*() {
    yield* checkOptions(options)
    const loaded = options.taskFile !== undefined
      ? yield* TaskFile.load(options.taskFile)
      : options.task !== undefined
      ? { task: yield* TaskFile.decode(options.task, "task"), file: "", dir: path.resolve(options.taskDir ?? ".") }
      : yield* Effect.fail(invalid("options", "give taskFile or task"))
    let task = loaded.task
    const limits = limitsGiven(options)
    if (limits !== undefined) task = { ...task, budget: { ...task.budget, ...limits } }
    const declared = yield* declaredBackend(task)
    const wired: Settings.Settings = {
      ...Settings.defaults,
      ...(declared !== undefined ? { backend: declared } : {}),
      ...Object.fromEntries(Object.entries(options).filter(([k, v]) => k in Settings.defaults && v !== undefined)),
      ...(options.stagnation !== undefined ? { stagnation: options.stagnation } : {}),
      ...(options.failFast !== undefined ? { failFast: options.failFast } : {}),
      ...modelSettings(options),
      ...(options.reuse === false ? { reuse: false } : {}),
      taskFile: loaded.file,
      taskDir: loaded.dir
    }
    const code = runFingerprint(task, loaded.dir, loaded.file, wired.backend)
    const settings: Settings.Settings = { ...wired, ...(code !== undefined ? { code } : {}) }
    yield* Schema.decodeUnknownEffect(Settings.Settings)(settings).pipe(
      Effect.mapError((e) => invalid("options", `invalid settings:\n${TaskFile.formatIssues(e)}`))
    )
    let landscape: Simulator.Landscape | undefined
    if (settings.backend === "simulator") {
      landscape = (yield* Simulator.fromTask(task, loaded.dir, loaded.file === "" ? undefined : loaded.file)).landscape
      task = Simulator.completeTask(task, landscape)
    }
    yield* Wiring.check(settings, task)
    return { task, settings, ...(landscape !== undefined ? { landscape } : {}) }
  })

const invalid = (source: string, message: string) => new Errors.InvalidInput({ source, message })

/** The limits of the budget the options give (`budget`, and `maxTrials` on its own), if any. */
const limitsGiven = (options: Options): Budget.Budget | undefined =>
  options.budget === undefined && options.maxTrials === undefined
    ? undefined
    : { ...options.budget, ...(options.maxTrials !== undefined ? { maxTrials: options.maxTrials } : {}) }

/** Each limit, the `trex run`/`resume` flag that sets it, what of it a run used, and what one trial is expected to take of it. */
const LIMITS: { readonly [L in Budget.Limit]: {
  readonly flag: string
  readonly unit: string
  readonly used: (u: Budget.Usage) => number
  readonly trial: (estimate: Cost.Cost) => number
} } = {
  maxTrials: { flag: "--max-trials", unit: "trials", used: (u) => u.trials, trial: () => 1 },
  gpuHours: { flag: "--gpu-hours", unit: "GPU-hours", used: (u) => u.spent.gpuSeconds / 3600, trial: (e) => e.gpuSeconds / 3600 },
  wallClockHours: { flag: "--wall-clock-hours", unit: "hours of wall clock", used: (u) => u.elapsedSeconds / 3600, trial: (e) => e.wallSeconds / 3600 },
  dollars: { flag: "--dollars", unit: "dollars", used: (u) => u.spent.dollars, trial: (e) => e.dollars },
  tokens: { flag: "--tokens", unit: "tokens", used: (u) => Cost.tokens(u.spent), trial: () => 1 }
}

/** `x` rounded up to 4 significant digits (a limit that is enough). */
const roundUp = (x: number): number => {
  if (x <= 0) return 0
  const scale = 10 ** (Math.floor(Math.log10(x)) - 3)
  return Math.ceil(x / scale - 1e-9) * scale
}
const show = (x: number): string => String(Number(x.toPrecision(4)))

/**
 * The limits that leave a run with these entries no room for another trial under `task`'s budget:
 * each one the run has used up, or that the next trial would pass, named with what was used, what a
 * trial is expected to take, and the flag that makes room (none while trials are in flight: they
 * may make room). `trials`: the trials the run has started.
 */
const noRoom = (task: Task.Task, entries: ReadonlyArray<JournalEvent.Entry>) => {
  const blocked: Array<{ readonly limit: Budget.Limit; readonly text: string }> = []
  let budget: Budget.Budget = task.budget
  let trials = 0
  for (;;) {
    const { blockedBy, estimate, usage } = Explorer.admission(entries, { ...task, budget })
    trials = usage.trials
    if (blockedBy === undefined) break
    const { flag, trial, unit, used } = LIMITS[blockedBy]
    const room = blockedBy === "maxTrials" || blockedBy === "tokens" ? used(usage) + 1 : roundUp(used(usage) + trial(estimate))
    const expected = blockedBy === "maxTrials" || blockedBy === "tokens" || trial(estimate) === 0 ? "" : `, and a trial is expected to take ${show(trial(estimate))} more`
    blocked.push({ limit: blockedBy, text: `${blockedBy}: ${show(used(usage))} of ${budget[blockedBy]} ${unit} used${expected} (give ${flag} ${show(room)} or more)` })
    const { [blockedBy]: _, ...rest } = budget
    budget = rest
  }
  return { blocked, trials }
}

/**
 * A resume with new limits must leave room for a trial: a limit that the run has used up, or that
 * the next trial would pass (the one given too small, or another the run ended on while only
 * `maxTrials` was raised), would end it at once, having run nothing. Each such limit is named (see
 * {@link noRoom}).
 */
const checkRoomLeft = (runDir: string, task: Task.Task, entries: ReadonlyArray<JournalEvent.Entry>): Effect.Effect<void, Errors.InvalidInput> => {
  const { blocked, trials } = noRoom(task, entries)
  if (blocked.length === 0) return Effect.void
  // the trial budget alone: worded as before
  if (blocked.length === 1 && blocked[0]!.limit === "maxTrials") {
    return Effect.fail(invalid("maxTrials", `the run has run ${trials} trials already: give --max-trials ${trials + 1} or more to run more`))
  }
  return Effect.fail(invalid(
    blocked[0]!.limit,
    `${runDir}: resumed with this budget, the run would start no trial:\n` +
      blocked.map((b) => `  ${b.text}`).join("\n")
  ))
}

/**
 * What a resume with no new limits says of a run whose budget has no room for another trial: the
 * resume runs none (it exits as the run ended: a script may resume a run until it is done), and
 * this names each limit and the flag that makes room.
 */
const noRoomNotice = (task: Task.Task, entries: ReadonlyArray<JournalEvent.Entry>): string | undefined => {
  const { blocked } = noRoom(task, entries)
  return blocked.length === 0
    ? undefined
    : `the run's budget has no room for another trial, so this resume starts none; to run on, resume with more:\n` +
      blocked.map((b) => `  ${b.text}`).join("\n")
}

/**
 * The settings a run was started with, as `trex run` and `Trex.start` record them (`recorded`: with
 * those resumes replaced since, `RunResumed.settings`). A run wired in
 * code (`Explorer.run` with its own layers) records none, or its own: the CLI cannot rebuild its
 * researcher and backend, and says so (no version of trex could). Settings that name a researcher
 * and a backend yet do not decode were recorded by another trex (a newer one, with a backend or
 * option this one does not know).
 */
const recordedSettings = (
  runDir: string,
  started: JournalEvent.Of<"RunStarted">,
  recorded: Record<string, unknown>
): Effect.Effect<Settings.Settings, Errors.InvalidInput> =>
  Schema.decodeUnknownEffect(Settings.Settings)(recorded, { errors: "all" }).pipe(
    Effect.mapError((e) => {
      const fromCli = ["researcher", "backend", "executor", "policy"].every((k) => typeof recorded[k] === "string")
      return invalid(
        runDir,
        fromCli
          ? `${runDir}: the run's recorded settings are not ones this trex knows:\n${TaskFile.formatIssues(e)}\n` +
            `The run was likely started by another version of trex (a newer one, with a backend or option this one lacks): resume it with that version. ` +
            `\`trex status\` and \`trex report\` work on it with this one`
          : `${runDir}: this run was not started by \`trex run\` or Trex.start: it was wired in code (Explorer.run with its own layers), ` +
            `and its recorded settings name no researcher or backend trex can rebuild, so \`trex resume\` cannot continue it. ` +
            `Resume it from code: call Explorer.run again with the same runId (${started.runId}) and runDir, ` +
            `Journal.Journal.layerSqlite(${JSON.stringify(RunDir.journalFile(runDir))}) and the same policy, researcher, executor and backend layers ` +
            `(it replays the journal and carries on). \`trex status\` and \`trex report\` work on it as it is`
      )
    })
  )

/**
 * A run resumes only with the trainer it started with: its task folder where it was (the recipe
 * runs files from it), and the trainer code unchanged (the results so far came from that code; a
 * resumed run would mix the two, and later runs would reuse the new results as the old code's).
 */
const sameTrainer = (runDir: string, task: Task.Task, settings: Settings.Settings): Effect.Effect<void, Errors.InvalidInput> => {
  if (settings.code === undefined) return Effect.void
  const fresh = `start a new run from the task file (trex run ${settings.taskFile !== "" ? settings.taskFile : "<task file>"})`
  if (!fs.existsSync(settings.taskDir)) {
    return Effect.fail(invalid(runDir, `the task folder ${settings.taskDir} this run started from is gone (moved or deleted), and its trials run files from it: put it back, or ${fresh}`))
  }
  const table = settings.backend === "simulator" && typeof task.backend?.["table"] === "string" ? task.backend["table"] : undefined
  if (table !== undefined && !fs.existsSync(path.resolve(settings.taskDir, table))) {
    return Effect.fail(invalid(
      runDir,
      `the recorded table this run replays, ${path.resolve(settings.taskDir, table)} (the task's backend.table), is gone (moved or deleted): put it back to resume, or ${fresh}`
    ))
  }
  // runs started before the task file itself was left out of the fingerprint counted it in, those started
  // before other task files were left out counted those, and simulated runs started before their table was
  // counted in did not count it
  const now = runFingerprint(task, settings.taskDir, settings.taskFile, settings.backend)
  const earlier = [
    codeFingerprint(task, settings.taskDir, settings.taskFile),
    codeFingerprint(task, settings.taskDir, settings.taskFile, { otherTaskFiles: true }),
    codeFingerprint(task, settings.taskDir, undefined, { otherTaskFiles: true })
  ]
  if (now === settings.code || earlier.includes(settings.code)) {
    return Effect.void
  }
  return Effect.fail(invalid(
    runDir,
    `the trainer code under ${settings.taskDir}${table !== undefined ? `, or the recorded table it replays (${table}),` : ""} changed since this run started ` +
      `(a source file the recipe's folders hold was edited, added or removed${table !== undefined ? ", or the table was edited" : ""}): ` +
      `its results so far came from the earlier ${table !== undefined ? "version" : "code"}, and resuming would mix the two. ` +
      `Restore ${table !== undefined ? "them" : "the code"} to resume, or ${fresh}`
  ))
}

/**
 * The backend a task file names in `backend.kind` (the backend a run uses unless told otherwise:
 * `--backend`, or `backend` in the options), if it names one.
 */
const declaredBackend = (task: Task.Task): Effect.Effect<Settings.Settings["backend"] | undefined, Errors.InvalidInput> => {
  const kind = task.backend?.["kind"]
  if (kind === undefined) return Effect.succeed(undefined)
  return Schema.is(Settings.BackendKind)(kind)
    ? Effect.succeed(kind)
    : Effect.fail(invalid("backend.kind", `backend.kind in the task file is ${JSON.stringify(kind)}: use one of ${Settings.BackendKind.literals.join(", ")}, or leave it out (local processes)`))
}

/**
 * What a run fails with: its journal cannot be written or read, a backend cannot be reached, its
 * settings are wrong for the task, or its search policy failed.
 * @since 0.1.0 @category models
 */
export type RunError = Errors.BackendError | Explorer.Error

/**
 * Run a prepared search to its end, then write its `report.md` (also when it fails or is
 * interrupted; a report that cannot be written is logged as a warning, and the run's outcome stands).
 * @since 0.1.0 @category running
 */
export const runPrepared = (prepared: Prepared, hooks: Hooks = {}): Effect.Effect<Explorer.Summary, RunError> => {
  const notify = hooks.notify
  // A resumed run's entries are handed on (to the notifier, then the explorer, which replays them)
  // and let go of: nothing of this session holds them once the replay has read them.
  const { journaled, ...run } = prepared
  const given = new HandOver(journaled)
  // messages an earlier session left undelivered wait for a session with webhooks: said, not dropped
  if (notify === undefined || notify.urls.length === 0) {
    return Effect.scoped(Effect.andThen(RunDir.holdRun(run.runDir), Effect.andThen(Effect.suspend(() => Notify.remind(run.runDir, given.peek())), runHooked(run, given, hooks))))
  }
  // the run's end is posted after its report is written, from the journal the report was written from
  return Effect.scoped(Effect.gen(function*() {
    // the run's lock, held before the notifier starts (the journal opened later uses it): a session
    // started beside another is refused here, before it posts anything
    yield* RunDir.holdRun(run.runDir)
    const notifier = yield* Effect.suspend(() => Notify.make(notify, { ...run, journaled: given.peek() }))
    let ended: RunDir.RunInfo | undefined
    return yield* runHooked(run, given, {
      ...hooks,
      onEvent: (entry, tree) => {
        hooks.onEvent?.(entry, tree)
        notifier.onEvent(entry, tree)
      },
      onEnded: (info) => {
        ended = info
        hooks.onEnded?.(info)
      }
    }).pipe(Effect.onExit((exit) => notifier.end(Notify.endMessage({ ...run, task: run.task.name }, exit, ended))))
  }))
}

/** The entries handed on, as the explorer's option, let go of here. */
const journaledOf = (given: HandOver<ReadonlyArray<JournalEvent.Entry>>): { readonly journaled?: ReadonlyArray<JournalEvent.Entry> } => {
  const entries = given.take()
  return entries !== undefined ? { journaled: entries } : {}
}

/** What {@link runPrepared} calls back, and where it posts. @since 0.1.0 @category models */
export interface Hooks {
  readonly onEvent?: Explorer.Options["onEvent"]
  readonly control?: Control.Control
  /**
   * Called once the run has ended (and its journal is closed) with the run as its journal holds it,
   * the one `report.md` was written from, so a caller that shows it need not read the journal again.
   */
  readonly onEnded?: (info: RunDir.RunInfo) => void
  /** Webhooks told of the run's end (and with `best`, of each new best trial): see {@link Notify}. */
  readonly notify?: Notify.Options
}

const runHooked = (prepared: Omit<Prepared, "journaled">, given: HandOver<ReadonlyArray<JournalEvent.Entry>>, hooks: Hooks): Effect.Effect<Explorer.Summary, RunError> =>
  Effect.gen(function*() {
    const { runDir, settings, task } = prepared
    const code = settings.code
    // results of other runs in the same folder, of the same task and trainer code (see ResultCache.identity);
    // the journals of other tasks are told apart by their first event, and not read further
    // (one journal at a time, and only the events the cache reads: a folder of big runs would otherwise be held whole).
    // Runs still running there are followed: a result they find is reused, and a strategy they run is waited for.
    let cache = ResultCache.empty
    if (settings.reuse !== false) {
      const builder = ResultCache.builder({ task, code })
      const refresh = RunDir.followSiblings(
        path.dirname(runDir),
        runDir,
        { keep: (started) => ResultCache.reusable(started, { task, code }), tags: ResultCache.EVENTS },
        builder
      )
      yield* refresh
      cache = { ...builder.cache, refresh }
    }
    for (const warning of prepared.warnings ?? []) yield* Effect.logWarning(warning)
    const scheduler = yield* Wiring.scheduler(settings, task)
    const onEvent = scheduler === undefined ? hooks.onEvent : yield* warnIfNothingToCompare(yield* Wiring.ashaMetric(settings, task), hooks.onEvent)
    // (the options are made in a function of their own, so that no frame of this session holds the entries they hand over)
    return yield* Effect.suspend(() => Explorer.run(task, {
      runId: prepared.runId,
      runDir,
      seed: prepared.seed,
      concurrency: settings.concurrency,
      distillEvery: settings.distillEvery,
      cache,
      recorded: Schema.encodeSync(Settings.Settings)(settings),
      ...journaledOf(given),
      ...(prepared.budget !== undefined ? { budget: prepared.budget } : {}),
      ...(prepared.replaced !== undefined ? { resumedSettings: prepared.replaced } : {}),
      ...(onEvent !== undefined ? { onEvent } : {}),
      ...(hooks.control !== undefined ? { control: hooks.control } : {}),
      ...(settings.stagnation !== undefined ? { stagnation: settings.stagnation } : {}),
      // on the simulator a failure is the recorded run's, its configuration's, never the setup's (and many read alike)
      ...(settings.failFast !== undefined ? { failFast: settings.failFast } : settings.backend === "simulator" ? { failFast: 0 } : {}),
      ...(settings.researcherRetries !== undefined ? { researcherRetries: settings.researcherRetries } : {}),
      ...(settings.researcherRetryDelaySeconds !== undefined ? { researcherRetryDelay: Duration.seconds(settings.researcherRetryDelaySeconds) } : {}),
      ...(scheduler !== undefined ? { scheduler } : {})
    })).pipe(Effect.provide(Wiring.layers(settings, task, runDir, prepared.landscape)))
  }).pipe(
    // after the run's layers are closed (its journal's lock released), so the report says how it ended
    Effect.ensuring(writeReport(prepared.runDir, hooks.onEnded))
  )

/**
 * `onEvent`, and a warning, once, when the first trial to succeed reported no two steps of the points
 * ASHA compares: it has nothing to stop early (a recipe that reports its metric only at the end, or
 * under another name or split), and the user is told what the trial did report.
 */
const warnIfNothingToCompare = (metric: Asha.Options["metric"], onEvent: Explorer.Options["onEvent"]) =>
  Effect.map(Effect.context<never>(), (context): Explorer.Options["onEvent"] => {
    let checked = false
    return (entry, tree) => {
      onEvent?.(entry, tree)
      const e = entry.event
      if (checked || e._tag !== "NodeFinished" || e.outcome !== "Succeeded") return
      checked = true
      const curve = tree.get(e.nodeId)?.curve ?? []
      const steps = new Set(curve.filter((p) => p.name === metric.name && p.split === metric.split).map((p) => p.step))
      if (steps.size >= 2) return
      const reported = [...new Set(curve.map((p) => `${p.split}/${p.name}`))]
      const what = `${metric.split}/${metric.name}`
      Effect.runForkWith(context)(Effect.logWarning(
        `--scheduler asha compares the ${what} points a trial reports as it trains, and trial ${e.nodeId} finished with ` +
          `${steps.size === 0 ? "none" : "one only (at a single step: nothing to stop early)"} ` +
          `(it reported ${reported.length > 0 ? reported.slice(0, 8).join(", ") + (reported.length > 8 ? ", ..." : "") : "no intermediate points"}): ` +
          `asha has nothing to act on. Report ${metric.name} on split ${metric.split} at each evaluation (docs/job-protocol.md), or run without --scheduler asha`
      ))
    }
  })

/**
 * Write `report.md` into a run directory from its journal. A run that recorded nothing (it failed
 * before it started) gets none; one that cannot be written is logged.
 */
const writeReport = (runDir: string, onLoaded?: (info: RunDir.RunInfo) => void): Effect.Effect<void> =>
  RunDir.load(runDir).pipe(
    // The session's run has ended (its journal is closed), though this process still holds the run's lock
    // (RunDir.holdRun, let go once what it posts is posted): no controller writes the run.
    Effect.map((info): RunDir.RunInfo =>
      info.writer?.pid === process.pid && (info.writer.host === undefined || info.writer.host === os.hostname()) ? { ...info, writer: undefined } : info
    ),
    Effect.tap((info) => Effect.sync(() => onLoaded?.(info))),
    Effect.flatMap((info) =>
      Effect.suspend(() => {
        const failed = writeReportFile(path.join(runDir, "report.md"), Status.toMarkdown(info))
        return failed === undefined ? Effect.void : Effect.logWarning(failed)
      })
    ),
    Effect.catch(() => Effect.void)
  )

/**
 * The events of a run, kept for any number of readers: each reads from the run's first event,
 * however late it starts, and its reading ends when the run ends.
 */
class EventLog {
  private readonly entries: Array<JournalEvent.Entry> = []
  private readonly readers = new Set<{ readonly entry: (entry: JournalEvent.Entry) => void; readonly end: () => void }>()
  private ended = false

  readonly push = (entry: JournalEvent.Entry): void => {
    if (this.ended) return
    this.entries.push(entry)
    for (const r of this.readers) r.entry(entry)
  }

  readonly end = (): void => {
    if (this.ended) return
    this.ended = true
    for (const r of this.readers) r.end()
    this.readers.clear()
  }

  /** Every entry so far, then each as it comes, then the end; returns a function that stops the reading. */
  follow(entry: (entry: JournalEvent.Entry) => void, end: () => void): () => void {
    for (const e of this.entries) entry(e)
    if (this.ended) {
      end()
      return () => {}
    }
    const reader = { entry, end }
    this.readers.add(reader)
    return () => void this.readers.delete(reader)
  }

  readonly stream: Stream.Stream<JournalEvent.Entry> = Stream.callback<JournalEvent.Entry>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => this.follow((e) => void Queue.offerUnsafe(queue, e), () => void Queue.endUnsafe(queue))),
      (stop) => Effect.sync(stop)
    )
  )

  readonly iterable: AsyncIterable<JournalEvent.Entry> = {
    [Symbol.asyncIterator]: () => {
      const pending: Array<JournalEvent.Entry> = []
      let done = false
      let wake: (() => void) | undefined
      const stop = this.follow((e) => {
        pending.push(e)
        wake?.()
      }, () => {
        done = true
        wake?.()
      })
      return {
        next: async (): Promise<IteratorResult<JournalEvent.Entry>> => {
          for (;;) {
            if (pending.length > 0) return { value: pending.shift()!, done: false }
            if (done) return { value: undefined, done: true }
            await new Promise<void>((r) => wake = r)
            wake = undefined
          }
        },
        return: async (): Promise<IteratorResult<JournalEvent.Entry>> => {
          stop()
          done = true
          pending.length = 0
          return { value: undefined, done: true }
        }
      }
    }
  }
}

/** The run of a search or a start: the control (paused if asked), the run and the log of its events. */
const launch = (prepared: Prepared, options: Options) => {
  const control = new Control.Control()
  if (options.paused === true) control.pause()
  const log = new EventLog()
  const run = runPrepared(prepared, { control, onEvent: log.push, ...(options.notify !== undefined ? { notify: options.notify } : {}) }).pipe(
    options.logLevel !== undefined ? Effect.provideService(References.MinimumLogLevel, options.logLevel) : (self) => self,
    Effect.ensuring(Effect.sync(log.end))
  )
  return { control, log, run }
}

/**
 * A running search.
 * @since 0.1.0 @category models
 */
export interface Search {
  readonly runId: string
  readonly runDir: string
  /**
   * The run's journal events: each run of the stream starts from the run's first event (`RunStarted`,
   * or `RunResumed` for a resumed run), however late it starts, and ends when the run ends (finished,
   * failed or interrupted). The events are kept for the search's lifetime.
   */
  readonly events: Stream.Stream<JournalEvent.Entry>
  /** No new trials start; running ones finish. */
  readonly pause: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  /**
   * `"drain"` lets running trials finish (those whose job still waits in the backend's queue are
   * withdrawn, to run on resume); `"cancel"` cancels them all (`trex resume` continues later).
   */
  readonly stop: (mode?: Control.StopMode) => Effect.Effect<void>
  /** The run's summary when it ends (its `report.md` is written by then). */
  readonly await: Effect.Effect<Explorer.Summary, RunError>
}

/**
 * Start a search in the background of the current scope (closing the scope interrupts it).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Trex } from "@trex/cli"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const search = yield* Trex.search({ taskFile: "examples/quickstart/task.yaml", maxTrials: 4 })
 *   yield* search.events.pipe(Stream.take(3), Stream.runForEach((e) => Effect.log(e.event._tag)), Effect.forkChild)
 *   return yield* search.await
 * }))
 * ```
 * @since 0.1.0 @category running
 */
export const search = (options: Options): Effect.Effect<Search, Errors.InvalidInput | Errors.JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const prepared = yield* prepare(options)
    const { control, log, run } = launch(prepared, options)
    const done = yield* Deferred.make<Explorer.Summary, RunError>()
    yield* run.pipe(
      Effect.onExit((exit) => Deferred.done(done, exit)),
      Effect.forkScoped
    )
    return {
      runId: prepared.runId,
      runDir: prepared.runDir,
      events: log.stream,
      pause: Effect.sync(() => control.pause()),
      resume: Effect.sync(() => control.resume()),
      stop: (mode = "drain") => Effect.sync(() => control.stop(mode)),
      await: Deferred.await(done)
    }
  })

/** The promise-based handle. @since 0.1.0 @category models */
export interface Handle {
  readonly runId: string
  readonly runDir: string
  /** Every event from the start of the run, as an async iterator (each iteration starts from the first); ends with the run. */
  readonly events: AsyncIterable<JournalEvent.Entry>
  readonly pause: () => void
  readonly resume: () => void
  readonly stop: (mode?: Control.StopMode) => void
  /**
   * Resolves with the summary when the run ends (its `report.md` is written by then), or rejects with
   * the {@link RunError} it failed with. A failure awaited late, or never, does not end the process
   * as an unhandled rejection: it waits here for whoever awaits `done`.
   */
  readonly done: Promise<Explorer.Summary>
}

/**
 * Start a search from plain JavaScript/TypeScript: promises and an async iterator.
 *
 * @example
 * ```ts
 * import { Trex } from "@trex/cli"
 * const search = await Trex.start({ taskFile: "examples/quickstart/task.yaml", maxTrials: 4 })
 * for await (const { event } of search.events) {
 *   if (event._tag === "NodeFinished") console.log(event.nodeId, event.result?.score)
 * }
 * const summary = await search.done
 * ```
 * @since 0.1.0 @category running
 */
export const start = async (options: Options): Promise<Handle> => {
  const prepared = await Effect.runPromise(prepare(options))
  const { control, log, run } = launch(prepared, options)
  const done = Effect.runPromise(run)
  // A run that fails while the caller is still busy elsewhere (iterating its events, awaiting other
  // work, or not awaiting `done` at all) must not end the caller's process as an unhandled rejection:
  // the error is the caller's to read, typed, whenever it awaits `done`.
  done.catch(() => undefined)
  return {
    runId: prepared.runId,
    runDir: prepared.runDir,
    events: log.iterable,
    pause: () => control.pause(),
    resume: () => control.resume(),
    stop: (mode = "drain") => control.stop(mode),
    done
  }
}
