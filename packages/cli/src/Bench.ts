/**
 * `trex bench`: compare search methods side by side on recorded tables (or any CSV of the same
 * kind), on the same tasks and seeds, in simulated time. Reports mean normalised regret
 * `(best - found) / (best - worst)` per method and trial count, and regret against simulated
 * GPU-hours.
 *
 * A method is a policy and a researcher: `uct` (the default: UCT + heuristic researcher),
 * `puct`, `greedy`, `best-first` (each with the heuristic researcher), `random` (random search:
 * uniform proposals) and `tpe` (flat TPE), each also with ASHA early stopping as `trex run
 * --scheduler asha` sets it up (`uct+asha`) — or a `Contender` of your own (a named policy, and
 * a researcher or the heuristic one, and a scheduler if you like), benchmarked the same way from code.
 *
 * @since 0.1.0
 */
import { HeuristicResearcher, RandomResearcher, TemplateExecutor, TpeResearcher } from "@trex/agents"
import { Errors, Journal, type JournalEvent, Researcher, type Scheduler, SearchPolicy, type Task, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Control, Explorer, RandomPolicy } from "@trex/mcts"
import { Effect, Layer } from "effect"
import * as Wiring from "./Wiring.ts"

/** The methods `trex bench` knows; each may also run with ASHA early stopping (`uct+asha`, see {@link ASHA}). @since 0.1.0 @category models */
export const methods = ["uct", "puct", "greedy", "best-first", "random", "tpe"] as const
/**
 * The suffix that runs a method with ASHA early stopping, as `trex run --scheduler asha` does
 * (on the points of the table's curve; see `Wiring.asha`): `uct+asha`.
 * @since 0.1.0 @category models
 */
export const ASHA = "+asha"
/** @since 0.1.0 @category models */
export type Method = typeof methods[number] | `${typeof methods[number]}+asha`

/**
 * A method of your own: a named search policy and a researcher (default: the heuristic one). The
 * same instances serve every seed, so they must keep no state outside the tree they are given (as
 * the contracts ask).
 * @since 0.1.0 @category models
 */
export interface Contender {
  readonly name: string
  readonly policy: SearchPolicy.SearchPolicyShape
  readonly researcher?: Researcher.ResearcherShape | undefined
  /** Early stopping of its trials (default none): an `Asha.make` on the points of the table's curve, say. */
  readonly scheduler?: Scheduler.SchedulerShape | undefined
}

/** A built-in method's name, or a contender of your own. @since 0.1.0 @category models */
export type MethodLike = Method | Contender

/** The name results are keyed by. @since 0.1.0 @category models */
export const nameOf = (method: MethodLike): string => (typeof method === "string" ? method : method.name)

const parts = (method: MethodLike): { policy: SearchPolicy.SearchPolicyShape; researcher: Researcher.ResearcherShape } => {
  if (typeof method !== "string") return { policy: method.policy, researcher: method.researcher ?? HeuristicResearcher.make() }
  switch (baseOf(method)) {
    case "random":
      return { policy: RandomPolicy.make(), researcher: RandomResearcher.make() }
    case "tpe":
      return { policy: RandomPolicy.make(), researcher: TpeResearcher.make() }
    default:
      return { policy: Wiring.policy(baseOf(method) as Exclude<typeof methods[number], "tpe">), researcher: HeuristicResearcher.make() }
  }
}

const baseOf = (method: Method): typeof methods[number] => (method.endsWith(ASHA) ? method.slice(0, -ASHA.length) : method) as typeof methods[number]

/**
 * A method's scheduler: a contender's own, ASHA for `<method>+asha` (as `trex run --scheduler asha`
 * sets it up, on the points the table's curve replays), else none. A table without a curve gives
 * ASHA nothing to act on, and is refused.
 */
const schedulerOf = (method: MethodLike, task: Task.Task, landscape: Simulator.Landscape): Effect.Effect<Scheduler.SchedulerShape | undefined, Errors.InvalidInput> => {
  if (typeof method !== "string") return Effect.succeed(method.scheduler)
  if (!method.endsWith(ASHA)) return Effect.undefined
  const curve = landscape.curve
  if (curve === undefined) {
    return Effect.fail(new Errors.InvalidInput({
      source: "--policies",
      message: `--policies ${method}: the table of task ${task.name} has no curve (backend.curve): its trials report no intermediate points, so asha would prune nothing. ` +
        `Compare ${baseOf(method)} without ${ASHA} on it, or name the table's column of per-checkpoint values in backend.curve`
    }))
  }
  return Wiring.asha({ name: curve.name, split: curve.split, direction: task.metric.direction })
}

/**
 * Regret after each trial of one run (in the order trials finished), with the simulated GPU-hours
 * spent and the simulated wall-clock hours passed by then.
 * @since 0.1.0 @category models
 */
export interface Trace {
  readonly regret: ReadonlyArray<number>
  readonly gpuHours: ReadonlyArray<number>
  readonly wallHours: ReadonlyArray<number>
}

/**
 * One seeded run of a method on a landscape in simulated time, until `trials` trials have
 * finished and `gpuHours` simulated GPU-hours are spent (or the space is exhausted), with
 * `concurrency` trials in flight on as many simulated GPUs (default 1: sequential).
 * @since 0.1.0 @category running
 */
export const runOnce = (
  task: Task.Task,
  landscape: Simulator.Landscape,
  method: MethodLike,
  seed: number,
  trials: number,
  options: { readonly gpuHours?: number | undefined; readonly concurrency?: number | undefined } = {}
): Effect.Effect<Trace, Explorer.Error> => {
  const gpuHours = options.gpuHours ?? 0
  const concurrency = options.concurrency ?? 1
  return Effect.gen(function*() {
    const { policy, researcher } = parts(method)
    const scheduler = yield* schedulerOf(method, task, landscape)
    const sim = yield* Simulator.Simulator
    // normalised over the rows this task's search can replay (its declared space's), not the whole table
    const rows = Simulator.reachable(landscape, task)
    // (as Simulator.regret, its range found once per run, not at every finished trial)
    const { best: top, worst } = Simulator.range(landscape, rows)
    const regretOf = (found: number) => (top === worst ? 0 : (top - found) / (top - worst))
    const regret: Array<number> = []
    const hours: Array<number> = []
    const wall: Array<number> = []
    let best: number | undefined
    let spent = 0
    const sign = task.metric.direction === "maximize" ? 1 : -1
    const control = new Control.Control()
    const onEvent = (entry: JournalEvent.Entry) => {
      const e = entry.event
      if (e._tag === "BudgetCharged") spent += e.cost.gpuSeconds
      // a trial cancelled by the stop below is no finished trial
      if (e._tag !== "NodeFinished" || e.outcome === "Cancelled") return
      const score = e.outcome === "Succeeded" ? e.result?.score : undefined
      if (score !== undefined && (best === undefined || sign * score > sign * best)) best = score
      regret.push(best === undefined ? 1 : regretOf(best))
      hours.push(spent / 3600)
      wall.push(Effect.runSync(sim.clock) / 3600)
      if (regret.length >= trials && spent / 3600 >= gpuHours) control.stop("cancel")
    }
    // With a GPU-hour horizon the trial count is open: the run is stopped from `onEvent`.
    const maxTrials = gpuHours > 0 ? Math.max(trials, Simulator.configurations(landscape).length) : trials
    yield* Explorer.run({ ...task, budget: { maxTrials } }, {
      runId: `bench-${nameOf(method)}-${seed}`,
      runDir: "/nonexistent",
      seed,
      concurrency,
      distillEvery: 5,
      // a recorded run that failed is its configuration's outcome, never a setup error (and many read alike)
      failFast: 0,
      control,
      onEvent,
      ...(scheduler !== undefined ? { scheduler } : {})
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Journal.Journal.layerMemory,
          Layer.succeed(SearchPolicy.SearchPolicy, policy),
          Layer.succeed(Researcher.Researcher, researcher),
          TemplateExecutor.layer({ taskDir: ".", recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } })
        )
      )
    )
    // a run that stopped early (space exhausted) keeps its last regret
    while (regret.length < trials) {
      regret.push(regret.at(-1) ?? 1)
      hours.push(hours.at(-1) ?? 0)
      wall.push(wall.at(-1) ?? 0)
    }
    return { regret, gpuHours: hours, wallHours: wall }
  }).pipe(Effect.provide(Simulator.Simulator.layer(landscape, { gpus: concurrency })))
}

/**
 * The regret of a run once `hours` simulated GPU-hours are spent: that of the best among the
 * trials that finished within them (1 if none did). A run that exhausted its space before
 * spending them keeps its last regret.
 * @since 0.1.0 @category running
 */
export const regretAtHours = (trace: Pick<Trace, "regret" | "gpuHours">, hours: number): number => {
  let regret = 1
  for (let k = 0; k < trace.regret.length && trace.gpuHours[k]! <= hours; k++) regret = trace.regret[k]!
  return regret
}

/** Mean regret per method at each trial count, for one task. @since 0.1.0 @category models */
export interface TaskResult {
  readonly task: string
  /** the table's configurations: the rows its filter keeps, a repeated configuration counted once */
  readonly rows: number
  /** how many seeds, `firstSeed .. firstSeed + seeds - 1`, the same for every method */
  readonly seeds: number
  readonly firstSeed: number
  /** method -> trial count -> mean regret */
  readonly regret: Record<string, Record<number, number>>
  /** method -> trial count -> standard error of that mean (sample standard deviation / sqrt(seeds); 0 for one seed) */
  readonly stdError: Record<string, Record<number, number>>
  /** method -> trial count -> the regret of each seed's run, in seed order (for paired comparisons) */
  readonly perSeed: Record<string, Record<number, ReadonlyArray<number>>>
  /** method -> trial count -> mean simulated GPU-hours spent */
  readonly gpuHours: Record<string, Record<number, number>>
  /** trials in flight at once, on as many simulated GPUs */
  readonly concurrency: number
  /** method -> trial count -> mean simulated wall-clock hours until that many trials had finished */
  readonly wallHours: Record<string, Record<number, number>>
  /** Regret against simulated GPU-hours (empty unless asked for): the same three views, keyed by GPU-hours spent. */
  readonly atHours: {
    readonly regret: Record<string, Record<number, number>>
    readonly stdError: Record<string, Record<number, number>>
    readonly perSeed: Record<string, Record<number, ReadonlyArray<number>>>
  }
}

/** A task file ready to benchmark: the task, completed from its table, and the table. @since 0.1.0 @category models */
export interface Prepared {
  readonly file: string
  readonly task: Task.Task
  readonly landscape: Simulator.Landscape
}

/**
 * Whether `methods` (and regret at `gpuHours`) can be measured on a task's table: refusals as an
 * `InvalidInput`, and warnings (lines) about figures that would say little.
 */
const checkTask = (
  { file, landscape, task }: Prepared,
  methods: ReadonlyArray<MethodLike>,
  gpuHours: ReadonlyArray<number>
): Effect.Effect<ReadonlyArray<string>, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const names = methods.map(nameOf)
    const twice = names.find((n, i) => names.indexOf(n) !== i)
    if (twice !== undefined) {
      return yield* new Errors.InvalidInput({ source: "methods", message: `two methods are named ${twice}: give each contender its own name` })
    }
    for (const method of methods) yield* schedulerOf(method, task, landscape)
    const warnings: Array<string> = []
    const configurations = Simulator.configurations(landscape)
    // regret is normalised over the rows the task's search can replay: its declared space's, else the table's
    const rows = Simulator.reachable(landscape, task)
    const scored = rows.filter((p) => p.score !== undefined).length
    const declared = landscape.space !== undefined
    if (scored === 0) {
      return yield* new Errors.InvalidInput({
        source: file,
        message: declared
          ? `${file}: none of the ${rows.length} configurations its searchSpace's points replay has a ${landscape.metric.column} ` +
            `(every one is a failed run): no regret can be measured. Declare a space that holds scored rows, or leave searchSpace out`
          : `${file}: none of the ${rows.length} configurations of its table (the rows backend.filter keeps, the first recorded run of each) has a ` +
            `${landscape.metric.column} (every one's first run failed; a later row repeating a configuration is never returned): no regret can be ` +
            `measured. Keep one row per configuration, with its ${landscape.metric.column}, and check backend.metric.column and backend.filter`
      })
    }
    const { best, worst } = Simulator.range(landscape, rows)
    if (best === worst) {
      const where = declared ? "its searchSpace reaches" : "of its table"
      warnings.push(
        `${file}: ${scored === 1 ? `only one configuration ${where} has a` : `all ${scored} configurations ${where} with a`} ` +
          `${landscape.metric.column}${scored === 1 ? "" : " score the same"} (${best}): regret is 0 from a method's first success, ` +
          `so this table cannot tell methods apart (check backend.metric.column and backend.filter)`
      )
    }
    if (gpuHours.length > 0) {
      const total = configurations.reduce((sum, p) => sum + p.seconds, 0) / 3600
      if (total === 0) {
        return yield* new Errors.InvalidInput({
          source: "--gpu-hours",
          message: `--gpu-hours: every trial of task ${task.name} (${file}) costs 0 simulated GPU-hours, so no budget of them is ever spent ` +
            `(each run would try the whole table, and its regret at any GPU-hours be the table's best). Give the table a cost in the task's ` +
            `backend section, cost: { column: <each run's time>, scale: <seconds per unit> } or cost: { seconds: <every run's> }, or leave --gpu-hours out`
        })
      }
      const largest = Math.max(...gpuHours)
      if (total < largest) {
        warnings.push(
          `${file}: all ${configurations.length} configurations of its table cost ${Number(total.toPrecision(3))} simulated GPU-hours, ` +
            `less than --gpu-hours ${largest}: each run tries every configuration`
        )
      }
    }
    return warnings
  })

/**
 * Read a task file and its table, and check that `methods` (and regret at `gpuHours`, if asked)
 * can be measured on it, before any run: `trex bench` with several tasks refuses a bad one at
 * once, not after the others' runs. A table whose trials all cost nothing is refused for
 * `gpuHours` (no budget of them is ever spent); a table whose configurations all score the same,
 * or that costs less in all than the largest budget, is benchmarked with a warning.
 * @since 0.1.0 @category running
 */
export const prepareTask = (
  file: string,
  options: { readonly methods: ReadonlyArray<MethodLike>; readonly gpuHours?: ReadonlyArray<number> | undefined }
): Effect.Effect<Prepared, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const loaded = yield* TaskFile.load(file)
    const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir, loaded.file)
    const prepared = { file: loaded.file, task: Simulator.completeTask(loaded.task, landscape), landscape }
    for (const w of yield* checkTask(prepared, options.methods, options.gpuHours ?? [])) yield* Effect.logWarning(w)
    return prepared
  })

/**
 * Benchmark methods on one task file (or one {@link prepareTask} read) over `seeds` seeds (from
 * `firstSeed`, default 0): regret at each of `trials` trial counts and, if given, once each of
 * `gpuHours` simulated GPU-hours is spent; `concurrency` trials in flight at once on as many
 * simulated GPUs (default 1).
 * @since 0.1.0 @category running
 */
export const benchTask = (
  file: string | Prepared,
  options: {
    readonly methods: ReadonlyArray<MethodLike>
    readonly seeds: number
    readonly trials: ReadonlyArray<number>
    readonly gpuHours?: ReadonlyArray<number> | undefined
    readonly firstSeed?: number | undefined
    readonly concurrency?: number | undefined
    /** Called after each method's runs, with the task's name and the seconds they took (for progress lines). */
    readonly onMethod?: ((task: string, method: string, seconds: number) => void) | undefined
  }
) =>
  Effect.gen(function*() {
    // a task prepared already has said its warnings; its refusals are checked again for these options
    const { task, landscape } = typeof file === "string"
      ? yield* prepareTask(file, { methods: options.methods, gpuHours: options.gpuHours })
      : yield* Effect.as(checkTask(file, options.methods, options.gpuHours ?? []), file)
    const horizon = Math.max(...options.trials)
    const budgets = options.gpuHours ?? []
    const hoursHorizon = Math.max(0, ...budgets)
    const firstSeed = options.firstSeed ?? 0
    const concurrency = options.concurrency ?? 1
    const byTrials = views()
    const byHours = views()
    const gpuHours: Record<string, Record<number, number>> = {}
    const wallHours: Record<string, Record<number, number>> = {}
    for (const method of options.methods) {
      const started = performance.now()
      const runs = options.trials.map((): Array<number> => [])
      const runsAtHours = budgets.map((): Array<number> => [])
      const hours = options.trials.map(() => 0)
      const wall = options.trials.map(() => 0)
      for (let seed = firstSeed; seed < firstSeed + options.seeds; seed++) {
        const trace = yield* runOnce(task, landscape, method, seed, horizon, { gpuHours: hoursHorizon, concurrency })
        options.trials.forEach((n, i) => {
          runs[i]!.push(trace.regret[n - 1]!)
          hours[i]! += trace.gpuHours[n - 1]!
          wall[i]! += trace.wallHours[n - 1]!
        })
        budgets.forEach((h, i) => runsAtHours[i]!.push(regretAtHours(trace, h)))
      }
      const name = nameOf(method)
      byTrials.add(name, options.trials, runs)
      byHours.add(name, budgets, runsAtHours)
      gpuHours[name] = Object.fromEntries(options.trials.map((n, i) => [n, hours[i]! / options.seeds]))
      wallHours[name] = Object.fromEntries(options.trials.map((n, i) => [n, wall[i]! / options.seeds]))
      options.onMethod?.(task.name, name, (performance.now() - started) / 1000)
    }
    return {
      task: task.name,
      rows: Simulator.configurations(landscape).length,
      seeds: options.seeds,
      firstSeed,
      ...byTrials.result,
      gpuHours,
      concurrency,
      wallHours,
      atHours: byHours.result
    } satisfies TaskResult
  })

/** Mean, standard error and the runs themselves, per method and key (a trial count, GPU-hours). */
const views = () => {
  const result = {
    regret: {} as Record<string, Record<number, number>>,
    stdError: {} as Record<string, Record<number, number>>,
    perSeed: {} as Record<string, Record<number, ReadonlyArray<number>>>
  }
  const add = (method: string, keys: ReadonlyArray<number>, runs: ReadonlyArray<ReadonlyArray<number>>) => {
    if (keys.length === 0) return
    result.regret[method] = Object.fromEntries(keys.map((k, i) => [k, mean(runs[i]!)]))
    result.stdError[method] = Object.fromEntries(keys.map((k, i) => [k, standardError(runs[i]!)]))
    result.perSeed[method] = Object.fromEntries(keys.map((k, i) => [k, runs[i]!]))
  }
  return { result, add }
}

const mean = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0) / xs.length

/** The standard error of the mean of `xs`: the sample standard deviation over the root of their number. @since 0.1.0 @category statistics */
export const standardError = (xs: ReadonlyArray<number>): number => {
  if (xs.length < 2) return 0
  const m = mean(xs)
  const variance = xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1)
  return Math.sqrt(variance / xs.length)
}

/**
 * The results as Markdown tables: each cell is the mean regret ± its standard error over the
 * seeds, by trial count and then (if measured) by simulated GPU-hours spent.
 * @since 0.1.0 @category formatting
 */
export const toTable = (results: ReadonlyArray<TaskResult>, trials: ReadonlyArray<number>, gpuHours: ReadonlyArray<number> = []): string => {
  const cell = (mean: number, se: number) => `${mean.toFixed(3)} ± ${se.toFixed(3)}`
  const last = Math.max(...trials)
  // with trials in parallel, the simulated wall-clock time differs from the GPU time
  const parallel = results.some((r) => r.concurrency > 1)
  const lines = [
    `| task | method | ${trials.map((n) => `N=${n}`).join(" | ")} | GPU-h at N=${last} |${parallel ? ` wall-h at N=${last} |` : ""}`,
    `|---|---|${trials.map(() => "---").join("|")}|---|${parallel ? "---|" : ""}`
  ]
  for (const r of results) {
    for (const [method, byN] of Object.entries(r.regret)) {
      const se = r.stdError[method]!
      const wall = parallel ? ` ${r.wallHours[method]![last]!.toFixed(1)} |` : ""
      lines.push(`| ${r.task} | ${method} | ${trials.map((n) => cell(byN[n]!, se[n]!)).join(" | ")} | ${r.gpuHours[method]![last]!.toFixed(1)} |${wall}`)
    }
  }
  if (gpuHours.length > 0) {
    lines.push("", `| task | method | ${gpuHours.map((h) => `${h} GPU-h`).join(" | ")} |`, `|---|---|${gpuHours.map(() => "---").join("|")}|`)
    for (const r of results) {
      for (const [method, byH] of Object.entries(r.atHours.regret)) {
        const se = r.atHours.stdError[method]!
        lines.push(`| ${r.task} | ${method} | ${gpuHours.map((h) => cell(byH[h]!, se[h]!)).join(" | ")} |`)
      }
    }
  }
  return lines.join("\n")
}

/** The ratio of two methods' mean regrets, with a 95 % interval. @since 0.1.0 @category models */
export interface Ratio {
  readonly ratio: number
  readonly low: number
  readonly high: number
}

/**
 * The ratio of the mean of `a` to the mean of `b`, two methods' regrets on the same seeds (in seed
 * order), with a 95 % percentile interval from resampling the seeds in pairs: `resamples` draws,
 * from a fixed seed, so the same runs give the same interval. NaN throughout where `b`'s mean is 0.
 * @since 0.1.0 @category statistics
 */
export const pairedRatio = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, resamples = 2000): Ratio => {
  const n = Math.min(a.length, b.length)
  const sum = (xs: ReadonlyArray<number>) => xs.slice(0, n).reduce((acc, x) => acc + x, 0)
  const sb = sum(b)
  if (n === 0 || sb === 0) return { ratio: NaN, low: NaN, high: NaN }
  // mulberry32: a small seeded generator, enough to pick seeds to resample
  let state = 0x9e3779b9
  const next = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const ratios: Array<number> = []
  for (let r = 0; r < resamples; r++) {
    let ta = 0
    let tb = 0
    for (let i = 0; i < n; i++) {
      const k = Math.floor(next() * n)
      ta += a[k]!
      tb += b[k]!
    }
    ratios.push(tb === 0 ? Infinity : ta / tb)
  }
  ratios.sort((x, y) => x - y)
  return { ratio: sum(a) / sb, low: ratios[Math.floor(0.025 * resamples)]!, high: ratios[Math.min(resamples - 1, Math.floor(0.975 * resamples))]! }
}

/**
 * Each method's mean regret as a ratio of `versus`'s, at each trial count, with 95 % intervals
 * from resampling the seeds in pairs (a Markdown table; "-" where `versus` is at 0, "inf" for a bound
 * where resamples of few seeds drew only runs in which `versus` is at 0).
 * @since 0.1.0 @category formatting
 */
export const toRatioTable = (results: ReadonlyArray<TaskResult>, trials: ReadonlyArray<number>, versus: string): string => {
  const lines = [
    `| task | method / ${versus} | ${trials.map((n) => `N=${n}`).join(" | ")} |`,
    `|---|---|${trials.map(() => "---").join("|")}|`
  ]
  for (const r of results) {
    const base = r.perSeed[versus]
    if (base === undefined) continue
    for (const [method, byN] of Object.entries(r.perSeed)) {
      if (method === versus) continue
      const cells = trials.map((n) => {
        const q = pairedRatio(byN[n]!, base[n]!)
        // a resample where `versus` is at 0 throughout has no finite ratio
        const bound = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "inf")
        return Number.isNaN(q.ratio) ? "-" : `${q.ratio.toFixed(2)} (${bound(q.low)}-${bound(q.high)})`
      })
      lines.push(`| ${r.task} | ${method} | ${cells.join(" | ")} |`)
    }
  }
  return lines.join("\n")
}

/** Whether a string names methods (`uct,random`; `uct+asha` with ASHA). @since 0.1.0 @category parsing */
export const parseMethods = (text: string): Effect.Effect<ReadonlyArray<Method>, Errors.InvalidInput> => {
  const names = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  const bad = names.filter((n) => !(methods as ReadonlyArray<string>).includes(n.endsWith(ASHA) ? n.slice(0, -ASHA.length) : n))
  return bad.length > 0 || names.length === 0
    ? Effect.fail(new Errors.InvalidInput({
      source: "--policies",
      message: `--policies: unknown method ${bad.join(", ") || "(none)"}; choose from ${methods.join(", ")}, each also with ${ASHA} for ASHA early stopping (uct${ASHA})`
    }))
    : Effect.succeed(names as ReadonlyArray<Method>)
}

/** Parse `10,20,40` (GPU-hours: positive numbers). @since 0.1.0 @category parsing */
export const parseHours = (text: string): Effect.Effect<ReadonlyArray<number>, Errors.InvalidInput> => {
  const hs = text.split(",").map((s) => Number(s.trim()))
  return hs.some((h) => !Number.isFinite(h) || h <= 0)
    ? Effect.fail(new Errors.InvalidInput({ source: "--gpu-hours", message: `--gpu-hours: expected positive numbers of GPU-hours separated by commas, got "${text}"` }))
    : Effect.succeed(hs)
}

/** Parse `5,10,20,30`. @since 0.1.0 @category parsing */
export const parseTrials = (text: string): Effect.Effect<ReadonlyArray<number>, Errors.InvalidInput> => {
  const ns = text.split(",").map((s) => Number(s.trim()))
  if (ns.length === 0 || ns.some((n) => !Number.isInteger(n) || n < 1)) {
    return Effect.fail(new Errors.InvalidInput({ source: "--trials", message: `--trials: expected positive whole numbers separated by commas, got "${text}"` }))
  }
  const over = ns.find((n) => n > MAX_TRIALS)
  return over !== undefined
    ? Effect.fail(new Errors.InvalidInput({ source: "--trials", message: `--trials: at most ${MAX_TRIALS} trials per run, got ${over}` }))
    : Effect.succeed(ns)
}

/** The most trials a benchmark run may ask for (the engine benchmarks run 100k; a table of recorded runs holds far fewer). @since 0.1.0 @category constants */
export const MAX_TRIALS = 100_000
