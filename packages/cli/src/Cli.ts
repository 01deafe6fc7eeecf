/**
 * The `trex` command line: `run`, `resume`, `status`, `report` (and `bench`).
 * Bad input exits 2 with a message naming the field and no stack trace.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Errors, TaskFile } from "@trex/core"
import type { Task } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer, ResultCache } from "@trex/mcts"
import { Effect, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as HtmlReport from "./HtmlReport.ts"
import * as LiveView from "./LiveView.ts"
import * as RunDir from "./RunDir.ts"
import * as Settings from "./Settings.ts"
import * as Status from "./Status.ts"
import * as Wiring from "./Wiring.ts"

const out = (text: string) => Effect.sync(() => process.stdout.write(text.endsWith("\n") ? text : text + "\n"))

/** Fill in what a simulated table provides: its search space and a default strategy. */
const withSimulatedSpace = (task: Task.Task, dir: string) =>
  Effect.gen(function*() {
    const { landscape } = yield* Simulator.fromTask(task, dir)
    return {
      ...task,
      searchSpace: task.searchSpace ?? Simulator.searchSpace(landscape),
      defaultStrategy: task.defaultStrategy ?? Simulator.defaultStrategy(landscape)
    } satisfies Task.Task
  })

/**
 * Run (or continue) a search and print where it is and the best strategy.
 * @since 0.1.0 @category commands
 */
export const execute = (task: Task.Task, settings: Settings.Settings, runDir: string, runId: string, seed: number) =>
  Effect.gen(function*() {
    const tty = process.stdout.isTTY === true
    const view = LiveView.make({ tty, write: (s) => process.stdout.write(s) })
    const existing = fs.existsSync(RunDir.journalFile(runDir)) ? yield* RunDir.readEntries(runDir) : []
    view.prime(existing, task.budget)
    const siblings = yield* RunDir.siblingJournals(path.dirname(runDir), runDir)
    yield* out(`run directory: ${runDir}`)
    const summary = yield* Explorer.run(task, {
      runId,
      runDir,
      seed,
      concurrency: settings.concurrency,
      distillEvery: settings.distillEvery,
      cache: ResultCache.fromJournals(siblings, task),
      onEvent: view.onEvent,
      recorded: Schema.encodeSync(Settings.Settings)(settings),
      ...(settings.stagnation !== undefined ? { stagnation: settings.stagnation } : {}),
      ...(Wiring.scheduler(settings, task) !== undefined ? { scheduler: Wiring.scheduler(settings, task)! } : {})
    }).pipe(
      Effect.provide(Wiring.layers(settings, task, runDir)),
      Effect.ensuring(Effect.sync(() => view.close()))
    )
    const info = yield* RunDir.load(runDir)
    fs.writeFileSync(path.join(runDir, "report.md"), Status.toMarkdown(info))
    yield* out(["", Status.toText(info, runDir), "", `report: ${path.join(runDir, "report.md")}`].join("\n"))
    return summary
  })

const taskFile = Argument.String("task-file").pipe(Argument.withDescription("a task file (YAML or JSON)"))
const runDirArg = Argument.String("run-dir").pipe(Argument.withDescription("a run directory, e.g. trex-runs/<run-id>"))

const runCommand = Command.make(
  "run",
  {
    taskFile,
    backend: Flag.Literals("backend", Settings.BackendKind.literals).pipe(Flag.withDefault(Settings.defaults.backend)),
    researcher: Flag.Literals("researcher", Settings.ResearcherKind.literals).pipe(Flag.withDefault(Settings.defaults.researcher)),
    executor: Flag.Literals("executor", Settings.ExecutorKind.literals).pipe(Flag.withDefault(Settings.defaults.executor)),
    policy: Flag.Literals("policy", Settings.PolicyKind.literals).pipe(Flag.withDefault(Settings.defaults.policy)),
    scheduler: Flag.Literals("scheduler", Settings.SchedulerKind.literals).pipe(Flag.withDefault(Settings.defaults.scheduler)),
    concurrency: Flag.Int("concurrency").pipe(Flag.withDefault(Settings.defaults.concurrency)),
    maxTrials: Flag.Int("max-trials").pipe(Flag.optional),
    seed: Flag.Int("seed").pipe(Flag.withDefault(0)),
    out: Flag.String("out").pipe(Flag.withDefault("trex-runs")),
    stagnation: Flag.Int("stagnation").pipe(Flag.optional)
  },
  (flags) =>
    Effect.gen(function*() {
      if (flags.concurrency < 1) return yield* new Errors.InvalidInput({ source: "--concurrency", message: "--concurrency must be at least 1" })
      if (Option.isSome(flags.maxTrials) && flags.maxTrials.value < 1) {
        return yield* new Errors.InvalidInput({ source: "--max-trials", message: "--max-trials must be at least 1" })
      }
      const loaded = yield* TaskFile.load(flags.taskFile)
      let task = loaded.task
      if (Option.isSome(flags.maxTrials)) task = { ...task, budget: { ...task.budget, maxTrials: flags.maxTrials.value } }
      const settings: Settings.Settings = {
        taskFile: loaded.file,
        taskDir: loaded.dir,
        backend: flags.backend,
        researcher: flags.researcher,
        executor: flags.executor,
        policy: flags.policy,
        scheduler: flags.scheduler,
        concurrency: flags.concurrency,
        distillEvery: Settings.defaults.distillEvery,
        ...(Option.isSome(flags.stagnation) ? { stagnation: flags.stagnation.value } : {})
      }
      if (settings.backend === "simulator") task = yield* withSimulatedSpace(task, loaded.dir)
      yield* Wiring.check(settings, task)
      const runId = RunDir.newRunId(task.name, new Date())
      const runDir = path.resolve(flags.out, runId)
      fs.mkdirSync(runDir, { recursive: true })
      yield* execute(task, settings, runDir, runId, flags.seed)
    })
).pipe(Command.withDescription("start a search on a task file"))

const resumeCommand = Command.make("resume", { runDir: runDirArg }, ({ runDir }) =>
  Effect.gen(function*() {
    const info = yield* RunDir.load(runDir)
    const settings = yield* Schema.decodeUnknownEffect(Settings.Settings)(info.started.options).pipe(
      Effect.mapError(() => new Errors.InvalidInput({ source: runDir, message: `${runDir}: the run's recorded settings are not readable by this trex` }))
    )
    yield* execute(info.started.task, settings, path.resolve(runDir), info.started.runId, info.started.seed)
  })).pipe(Command.withDescription("continue a stopped or killed run where it left off"))

const statusCommand = Command.make(
  "status",
  { runDir: runDirArg, json: Flag.Boolean("json").pipe(Flag.withDefault(false)) },
  ({ json, runDir }) =>
    Effect.gen(function*() {
      const info = yield* RunDir.load(runDir)
      yield* out(json ? JSON.stringify(Status.toJson(info), null, 2) : Status.toText(info, runDir))
    })
).pipe(Command.withDescription("show a run: tree, best node, budget used, insights"))

const reportCommand = Command.make(
  "report",
  { runDir: runDirArg, html: Flag.Boolean("html").pipe(Flag.withDefault(false)) },
  ({ html, runDir }) =>
    Effect.gen(function*() {
      const info = yield* RunDir.load(runDir)
      if (html) {
        const file = path.join(runDir, "report.html")
        fs.writeFileSync(file, HtmlReport.render({ entries: info.entries, logs: readLogTails(runDir, info) }))
        yield* out(file)
      } else {
        const file = path.join(runDir, "report.md")
        fs.writeFileSync(file, Status.toMarkdown(info))
        yield* out(file)
      }
    })
).pipe(Command.withDescription("write a Markdown (or with --html, a self-contained HTML) report of a run"))

/** The last lines of each job's logs, for the HTML report. */
const readLogTails = (runDir: string, info: RunDir.RunInfo): Record<string, Array<string>> => {
  const tails: Record<string, Array<string>> = {}
  for (const id of info.tree.ids()) {
    const lines: Array<string> = []
    for (const name of ["stdout.log", "stderr.log"]) {
      const file = path.join(RunDir.jobsDir(runDir), id, name)
      if (!fs.existsSync(file)) continue
      const size = fs.statSync(file).size
      const fd = fs.openSync(file, "r")
      const buf = Buffer.alloc(Math.min(size, 8192))
      fs.readSync(fd, buf, 0, buf.length, Math.max(0, size - buf.length))
      fs.closeSync(fd)
      lines.push(...buf.toString("utf8").split("\n").filter((l) => l.length > 0 && !l.startsWith("TREX_")).slice(-20))
    }
    if (lines.length > 0) tails[id] = lines.slice(-30)
  }
  return tails
}

/** @since 0.1.0 @category commands */
export const command = Command.make("trex").pipe(
  Command.withDescription("TREX: automate LLM fine-tuning by agent-driven tree search"),
  Command.withSubcommands([runCommand, resumeCommand, statusCommand, reportCommand])
)

