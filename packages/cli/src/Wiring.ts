/**
 * Build the layers a run needs from its {@link Settings}: the journal, the search policy, the
 * researcher, the executor and the backend it runs on. The one place where the packages meet.
 *
 * @since 0.1.0
 */
import { AnthropicModel, ClaudeResearcher, CodeAgentExecutor, HeuristicResearcher, type Model, OpenAiModel, RandomResearcher, TemplateExecutor, TpeResearcher } from "@trex/agents"
import { Backend, Errors, type ExecutorAgent, Journal, type Researcher, type Scheduler, SearchPolicy, Task, TaskFile } from "@trex/core"
import { DockerBackend, GridEngineBackend, KubernetesBackend, LocalBackend, Simulator, SlurmBackend, SshBackend } from "@trex/executors"
import { Asha, BestFirst, Greedy, Puct, RandomPolicy, Uct } from "@trex/mcts"
import { Duration, Effect, Layer, type Redacted } from "effect"
import * as BackendSettings from "./BackendSettings.ts"
import * as RunDir from "./RunDir.ts"
import { BackendKind, type Settings } from "./Settings.ts"

const unsupported = (what: string, fix: string) => new Errors.InvalidInput({ source: what, message: `${what}: ${fix}` })

/** A layer that fails to build, with a message naming the flag and the fix. */
const failing = <A>(what: string, fix: string): Layer.Layer<A, Errors.InvalidInput> =>
  Layer.unwrap(Effect.fail(unsupported(what, fix)) as Effect.Effect<Layer.Layer<A>, Errors.InvalidInput>)

/** The search policy for a name. @since 0.1.0 @category layers */
export const policy = (kind: Settings["policy"]): SearchPolicy.SearchPolicyShape => {
  switch (kind) {
    case "uct":
      return Uct.make()
    case "puct":
      return Puct.make()
    case "greedy":
      return Greedy.make()
    case "best-first":
      return BestFirst.make()
    case "random":
      return RandomPolicy.make()
  }
}

/**
 * The intermediate points `--scheduler asha` compares: a simulated task's curve (as its table
 * replays it: `backend.curve`'s name and split), else the task's metric on the `eval` split (the
 * job protocol's intermediate evaluations; a final `test` point, or a `train` one, is not compared).
 * A simulated task whose table has no curve is refused: its trials report nothing ASHA could act on.
 * @since 0.1.0 @category layers
 */
export const ashaMetric = (settings: Settings, task: Task.Task): Effect.Effect<Asha.Options["metric"], Errors.InvalidInput> =>
  Effect.gen(function*() {
    const direction = task.metric.direction
    if (settings.backend !== "simulator") return { name: task.metric.name, split: "eval", direction }
    const config = yield* Simulator.decodeConfig(task.backend, settings.taskFile !== "" ? settings.taskFile : "backend")
    const points = Simulator.curvePoints(config, task.metric)
    if (points === undefined) {
      return yield* unsupported(
        "--scheduler",
        `asha stops trials from the intermediate points they report, and the task's table has no curve (backend.curve): its trials report none, so asha would prune nothing. ` +
          `Name the column of per-checkpoint values in backend.curve (see bench/data/README.md), or leave out --scheduler asha`
      )
    }
    return { ...points, direction }
  })

/**
 * ASHA as `--scheduler asha` (and `trex bench`'s `<method>+asha`) sets it up on the given points: eta 3,
 * rungs at a ninth and a third of a whole trial's length (`minStep: "auto"`: the median length of the
 * trials that ran to their end).
 * @since 0.1.0 @category layers
 */
export const asha = (metric: Asha.Options["metric"]): Effect.Effect<Scheduler.SchedulerShape, Errors.InvalidInput> => Asha.make({ metric, minStep: "auto" })

/**
 * The scheduler: {@link asha} on the points {@link ashaMetric} names, else none.
 * @since 0.1.0 @category layers
 */
export const scheduler = (settings: Settings, task: Task.Task): Effect.Effect<Scheduler.SchedulerShape | undefined, Errors.InvalidInput> =>
  settings.scheduler === "asha" ? Effect.flatMap(ashaMetric(settings, task), asha) : Effect.undefined

/**
 * The backend layer, its jobs priced by the task's `backend.pricing` if it has one. A simulated
 * run's table is read from the task unless it was read already (`landscape`).
 * @since 0.1.0 @category layers
 */
export const backend = (
  settings: Settings,
  task: Task.Task,
  runDir: string,
  landscape?: Simulator.Landscape
): Layer.Layer<Backend.Backend, Errors.InvalidInput | Errors.BackendError> =>
  Layer.unwrap(Effect.map(BackendSettings.pricing(task.backend), (prices) => {
    const engine = backendEngine(settings, task, runDir, landscape)
    return prices === undefined ? engine : Backend.layerPriced(engine, prices)
  }))

const backendEngine = (
  settings: Settings,
  task: Task.Task,
  runDir: string,
  landscape?: Simulator.Landscape
): Layer.Layer<Backend.Backend, Errors.InvalidInput | Errors.BackendError> => {
  switch (settings.backend) {
    case "local":
      return LocalBackend.layer({
        root: RunDir.jobsDir(runDir),
        slots: settings.concurrency,
        ...(process.env["CUDA_VISIBLE_DEVICES"] ? { gpus: process.env["CUDA_VISIBLE_DEVICES"].split(",").filter((g) => g !== "") } : {})
      })
    case "simulator":
      if (landscape !== undefined) return Simulator.Simulator.layer(landscape, { gpus: settings.concurrency })
      return Simulator.Simulator.layerTable({ task, dir: settings.taskDir, ...(settings.taskFile !== "" ? { file: settings.taskFile } : {}), gpus: settings.concurrency })
    case "docker":
      return Layer.unwrap(Effect.map(BackendSettings.docker(task.backend, RunDir.jobsDir(runDir)), DockerBackend.layer))
    case "ssh":
      return Layer.unwrap(Effect.map(BackendSettings.ssh(task.backend), SshBackend.layer))
    case "slurm":
      return Layer.unwrap(Effect.map(SlurmBackend.fromJson(BackendSettings.section(task.backend, "slurm")), SlurmBackend.layer))
    case "gridengine":
      return Layer.unwrap(Effect.map(GridEngineBackend.fromJson(BackendSettings.section(task.backend, "gridengine")), GridEngineBackend.layer))
    case "k8s":
      return Layer.unwrap(Effect.map(KubernetesBackend.fromJson(BackendSettings.section(task.backend, "k8s")), KubernetesBackend.layer))
  }
}

/**
 * The values of the task's `recipe.secretEnv` from this process's environment, each `Redacted`, for
 * every job; a name that is not set is bad input naming it, and how to set it.
 * @since 0.1.0 @category layers
 */
export const secrets = (task: Task.Task): Effect.Effect<Record<string, Redacted.Redacted<string>>, Errors.InvalidInput> =>
  Effect.suspend(() => {
    const { missing, values } = Task.secretValues(task.recipe, process.env)
    if (missing.length === 0) return Effect.succeed({ ...values })
    const names = missing.join(", ")
    return Effect.fail(
      new Errors.InvalidInput({
        source: "recipe.secretEnv",
        message: `the task's recipe.secretEnv names ${names}, ${missing.length === 1 ? "which is" : "which are"} not set in trex's environment: ` +
          `set ${missing.length === 1 ? "it" : "them"} before \`trex run\` or \`trex resume\` (\`export ${missing[0]}=...\`); ` +
          `every job gets ${missing.length === 1 ? "its value" : "their values"} as a secret, never written to the run's files`
      })
    )
  })

/**
 * The model the LLM agents call: Claude (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `TREX_MODEL`) or
 * an OpenAI-compatible server such as vLLM, Ollama or llama.cpp (`OPENAI_BASE_URL`, `TREX_MODEL`).
 * A missing variable is reported as bad input naming it.
 * @since 0.1.0 @category layers
 */
export const model = (settings: Settings): Layer.Layer<Model.Model, Errors.InvalidInput> => {
  // --max-retry-after, --model-max-retries, --model-retry-delay, --model-max-retry-delay, --model-timeout (the model's own defaults otherwise)
  const retry: Model.RetryOptions = {
    ...(settings.maxRetryAfterSeconds !== undefined ? { maxRetryAfter: Duration.seconds(settings.maxRetryAfterSeconds) } : {}),
    ...(settings.modelMaxRetries !== undefined ? { maxRetries: settings.modelMaxRetries } : {}),
    ...(settings.modelRetryDelaySeconds !== undefined ? { baseDelay: Duration.seconds(settings.modelRetryDelaySeconds) } : {}),
    ...(settings.modelMaxRetryDelaySeconds !== undefined ? { maxDelay: Duration.seconds(settings.modelMaxRetryDelaySeconds) } : {})
  }
  const options = {
    ...(Object.keys(retry).length > 0 ? { retry } : {}),
    ...(settings.modelTimeoutSeconds !== undefined ? { timeoutMs: settings.modelTimeoutSeconds * 1000 } : {})
  }
  const [layer, needs, guide] = settings.modelApi === "openai-compatible"
    ? [OpenAiModel.layerConfig(options), "OPENAI_BASE_URL and TREX_MODEL", "docs/guide-local-model.md"] as const
    : [AnthropicModel.layerConfig(options), "ANTHROPIC_API_KEY", "docs/guide-claude.md"] as const
  // name only the flags that asked for a model: a template executor needs none
  const askers = [
    ...(settings.researcher === "claude" ? [`--researcher ${settings.researcher}`] : []),
    ...(settings.executor === "code-agent" ? [`--executor ${settings.executor}`] : [])
  ]
  const what = askers.length > 0 ? askers.join(" / ") : "the model"
  return layer.pipe(
    Layer.catchCause(() => failing(what, `set ${needs} in the environment (see ${guide})`))
  )
}

/**
 * Everything `Explorer.run` needs, on a SQLite journal in the run directory.
 * @since 0.1.0 @category layers
 */
export const layers = (
  settings: Settings,
  task: Task.Task,
  runDir: string,
  landscape?: Simulator.Landscape
): Layer.Layer<
  Journal.Journal | SearchPolicy.SearchPolicy | Researcher.Researcher | ExecutorAgent.ExecutorAgent,
  Errors.InvalidInput | Errors.BackendError | Errors.JournalError
> => {
  const backendLayer = backend(settings, task, runDir, landscape)
  const researcher = settings.researcher === "heuristic"
    ? HeuristicResearcher.layer()
    : settings.researcher === "claude"
    ? ClaudeResearcher.layer().pipe(Layer.provide([model(settings), ClaudeResearcher.ResearchTools.layer()]))
    : settings.researcher === "random"
    ? RandomResearcher.layer()
    : TpeResearcher.layer()
  // A simulated table needs no command: the simulator reads strategy.json itself.
  const recipe: Task.Recipe | undefined = settings.backend === "simulator" && task.recipe === undefined
    ? { command: ["simulate"], env: {}, resources: { gpus: 1, cpus: 1 } }
    : undefined
  // a job's log kept in the run's folder where its backend's own is elsewhere or goes (a local job writes its own there)
  const keepsLogs = settings.backend !== "local" && settings.backend !== "simulator"
  // the recipe's secretEnv, from this process's environment (checked by prepare; read again here, at the run's start)
  const executor = Layer.unwrap(Effect.map(secrets(task), (env) =>
    settings.executor === "template"
      ? TemplateExecutor.layer({
        taskDir: settings.taskDir,
        env,
        ...(recipe !== undefined ? { recipe } : {}),
        ...(keepsLogs ? { logDir: RunDir.jobsDir(runDir) } : {})
      }).pipe(Layer.provide(backendLayer))
      : CodeAgentExecutor.layer({ taskDir: settings.taskDir, env, ...(keepsLogs ? { logDir: RunDir.jobsDir(runDir) } : {}) }).pipe(
        Layer.provide([model(settings), backendLayer])
      )
  ))
  return Layer.mergeAll(
    Journal.Journal.layerSqlite(RunDir.journalFile(runDir)),
    Layer.succeed(SearchPolicy.SearchPolicy, policy(settings.policy)),
    researcher,
    executor
  )
}

/** The keys of a task's backend section: `kind`, each engine's section, and the simulator's settings. */
const sections: ReadonlyArray<string> = [
  ...new Set(["kind", "pricing", ...BackendKind.literals.filter((k) => k !== "local" && k !== "simulator"), ...Object.keys(Simulator.SimulatorConfig.fields)])
]

/**
 * The limits of a task's budget that cannot work as set, each with why and what to do instead: a
 * `gpuHours` budget whose trials ask for no GPU (they cost no GPU time, so it never stops the run),
 * `tokens` with no agent that calls a model (nothing else spends them), `dollars` with no such agent
 * and no `backend.pricing` that prices the trials (with `--model-api openai-compatible`, a call
 * costs tokens but no dollars), and `gpuHours` or priced `dollars` under concurrency with neither
 * a `recipe.estimate` of it nor a `recipe.resources.timeLimitSeconds` while no trial has reported
 * its cost (`costKnown`): the first trials then start with nothing held for them, and may together
 * pass it. `trex run`, `trex resume` and `Trex.start` log them as warnings.
 *
 * @example
 * ```ts
 * import { Settings, Wiring } from "@trex/cli"
 * declare const task: import("@trex/core").Task.Task
 * const warnings = Wiring.budgetWarnings({ ...Settings.defaults, taskFile: "t.yaml", taskDir: "." }, task)
 * ```
 * @since 0.1.0 @category validation
 */
export const budgetWarnings = (settings: Settings, task: Task.Task, options: { readonly costKnown?: boolean } = {}): Array<string> => {
  const b = task.budget
  const out: Array<string> = []
  const gpus = settings.backend === "simulator" ? 1 : task.recipe?.resources.gpus ?? 0
  const model = settings.researcher === "claude" || settings.executor === "code-agent"
  // the first trials start at once before any reports a cost, and only a declared estimate or a time limit bounds them
  const firstUnbounded = settings.concurrency > 1 && options.costKnown !== true && task.recipe?.resources.timeLimitSeconds === undefined
  if (b.gpuHours !== undefined && gpus === 0) {
    out.push(
      `budget.gpuHours (${b.gpuHours}) will never stop this run: its trials ask for no GPU (recipe.resources.gpus is 0), so they cost no GPU time. ` +
        `Ask for the GPUs a trial uses in recipe.resources.gpus, or limit the run with maxTrials or wallClockHours`
    )
  } else if (b.gpuHours !== undefined && firstUnbounded && task.recipe?.estimate?.gpuSeconds === undefined) {
    out.push(
      `budget.gpuHours (${b.gpuHours}): the first ${settings.concurrency} trials (--concurrency) start before any has reported its GPU time, with nothing held for them, and together they may pass the limit. ` +
        `Declare one trial's expected GPU-seconds in recipe.estimate.gpuSeconds, or its time limit in recipe.resources.timeLimitSeconds, to bound them`
    )
  }
  const prices = Backend.pricingOf(task.backend)
  const trialsPriced = prices !== undefined && ((prices.dollarsPerHour ?? 0) > 0 || ((prices.dollarsPerGpuHour ?? 0) > 0 && gpus > 0))
  if (b.dollars !== undefined) {
    if (trialsPriced) {
      if (firstUnbounded && task.recipe?.estimate?.dollars === undefined) {
        out.push(
          `budget.dollars (${b.dollars}): the first ${settings.concurrency} trials (--concurrency) start before any has reported its cost, with nothing held for them, and together they may pass the limit. ` +
            `Declare one trial's expected cost in recipe.estimate.dollars, or its time limit in recipe.resources.timeLimitSeconds, to bound them`
        )
      }
    } else if (!model) {
      out.push(
        `budget.dollars (${b.dollars}) will never stop this run: no agent of this run calls a model (--researcher claude and --executor code-agent do) and its trials are priced at nothing. ` +
          `Price the backend's compute in backend.pricing (dollarsPerGpuHour, dollarsPerHour), or limit the run with maxTrials, gpuHours or wallClockHours`
      )
    } else if (settings.modelApi === "openai-compatible") {
      out.push(`budget.dollars (${b.dollars}) will never stop this run: its model (--model-api openai-compatible) is priced as free, so its calls cost tokens but no dollars, and its trials are priced at nothing. Limit its calls with budget.tokens instead, or price the backend's compute in backend.pricing`)
    }
  }
  if (b.tokens !== undefined && !model) {
    out.push(
      `budget.tokens (${b.tokens}) will never stop this run: only model calls spend tokens, and no agent of this run calls a model ` +
        `(--researcher claude and --executor code-agent do). Limit the run with maxTrials, gpuHours or wallClockHours`
    )
  }
  return out
}

/**
 * Why a strict budget (`budget.strict`, `--strict-budget`) cannot work for this run, if it cannot:
 * it holds each trial at its time limit's worth, so it needs a time limit, on a backend that stops
 * a trial there (the simulator replays recorded costs and stops none).
 * @since 0.1.0 @category validation
 */
export const strictIssue = (settings: Settings, task: Task.Task): Errors.InvalidInput | undefined => {
  if (task.budget.strict !== true) return undefined
  if (settings.backend === "simulator") {
    return unsupported("budget.strict", "the simulator replays each trial's recorded cost and stops none at a time limit, so nothing bounds what a trial can cost: leave strict (--strict-budget) out")
  }
  const issue = Task.strictWithoutLimit(task)
  return issue === undefined ? undefined : unsupported("budget.strict", issue)
}

/** Check that a task has what the chosen researcher and executor need. @since 0.1.0 @category validation */
export const check = (settings: Settings, task: Task.Task): Effect.Effect<void, Errors.InvalidInput> =>
  Effect.gen(function*() {
    // a misspelt backend section (`dockr:`) would be ignored, and the run would go on without its settings
    for (const key of Object.keys(task.backend ?? {})) {
      const meant = sections.includes(key) ? undefined : TaskFile.closest(key, sections, 1)
      if (meant !== undefined) return yield* unsupported(`backend.${key}`, `not a backend setting; did you mean backend.${meant}?`)
    }
    const simulated = task.backend?.["kind"] === "simulator"
    if (simulated && settings.backend !== "simulator" && (task.searchSpace === undefined || task.recipe === undefined)) {
      return yield* unsupported(
        "--backend",
        `the task replays a recorded table (backend.kind: simulator) and declares no ${task.searchSpace === undefined ? "searchSpace" : "recipe"} of its own to run on ${settings.backend}: leave out --backend (or give --backend simulator)`
      )
    }
    if (settings.researcher === "heuristic" && task.searchSpace === undefined && settings.backend !== "simulator") {
      return yield* unsupported("task", "the heuristic researcher needs searchSpace.parameters in the task file")
    }
    if (settings.researcher === "heuristic" && task.defaultStrategy === undefined && settings.backend !== "simulator") {
      return yield* unsupported("task", "the heuristic researcher needs a defaultStrategy in the task file")
    }
    if (settings.executor === "template" && task.recipe === undefined && settings.backend !== "simulator") {
      return yield* unsupported("task", "the template executor needs recipe.command in the task file")
    }
    // the backend's settings and a model-backed agent's are read now, before a run directory is made for a run that cannot start
    const noImage = (kind: string) =>
      unsupported("recipe.image", `the ${kind} backend runs each trial in a container: name its image in recipe.image or backend.${kind}.image of the task file`)
    yield* BackendSettings.pricing(task.backend)
    const strict = strictIssue(settings, task)
    if (strict !== undefined) return yield* strict
    switch (settings.backend) {
      case "docker": {
        const docker = yield* BackendSettings.docker(task.backend, ".")
        if (docker.image === undefined && task.recipe?.image === undefined) return yield* noImage("docker")
        break
      }
      case "ssh":
        yield* BackendSettings.ssh(task.backend)
        break
      case "slurm":
        yield* SlurmBackend.fromJson(BackendSettings.section(task.backend, "slurm"))
        break
      case "gridengine":
        yield* GridEngineBackend.fromJson(BackendSettings.section(task.backend, "gridengine"))
        break
      case "k8s": {
        const k8s = yield* KubernetesBackend.fromJson(BackendSettings.section(task.backend, "k8s"))
        if (k8s.image === undefined && task.recipe?.image === undefined) return yield* noImage("k8s")
        break
      }
    }
    if (settings.researcher === "claude" || settings.executor === "code-agent") {
      yield* Effect.scoped(Layer.build(model(settings)))
    }
    yield* scheduler(settings, task)
  })
