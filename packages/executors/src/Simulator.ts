/**
 * The `Simulator` backend: replays a recorded table of real training runs (or a seeded
 * synthetic landscape) in simulated time, so search policies can be compared offline on the
 * same finite pool, with one or many GPUs.
 *
 * A job's `strategy.json` maps to a row through the declared parameters (exact match, else
 * the nearest row; inside the task's own search space, when it declares one: see {@link match}); the job "runs" for the row's cost in simulated seconds on one of `gpus`
 * slots, reports the row's curve as metrics, and exits with the row's metrics as its result.
 * Simulated time moves only when every unfinished job is watched and the program has been
 * quiet for a few scheduler rounds (see {@link SimulatorOptions.settleTurns}).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Backend, Errors, JobProtocol, SearchSpace, Strategy, Task, TaskFile } from "@trex/core"
import { Context, Effect, Layer, Schema, type Scope, Stream } from "effect"
import { decode as decodeCsv, parse as parseCsv } from "./internal/simCsv.ts"
import { drive, Engine, type SimJob, type Work } from "./internal/simClock.ts"
import * as L from "./internal/simLandscape.ts"
import { fromCsv, synthetic as makeSynthetic, TableIssues } from "./internal/simTable.ts"

/** A finite pool of configurations and their outcomes. @since 0.1.0 @category models */
export type Landscape = L.Landscape
/** One configuration of a landscape. @since 0.1.0 @category models */
export type Point = L.Point
/** A strategy's point and its normalised distance (0 = exact). @since 0.1.0 @category models */
export type Match = L.Match

const Value = Schema.Union([Schema.Finite, Schema.String, Schema.Boolean])

/**
 * The `backend` section of a simulator task: the table (relative to the task file), the rows
 * to keep, which columns are parameters (and their strategy paths), the metric (defaults to
 * the task's metric), the cost (a column times `scale`, or constant `seconds`; default 0),
 * an optional curve column (JSON list) and the number of GPUs. {@link decodeConfig} also checks
 * what the schema cannot say: each path at most once, one kind of cost, `scale` > 0, `seconds` >= 0.
 *
 * The table is comma-separated with a header line (UTF-8, or UTF-16 with its byte-order mark);
 * cells are trimmed. A metric cell that is empty or `NaN` is a run
 * that diverged or is missing (its trial fails as a crash); any other text (`inf`, `n/a`, `0,81`) is
 * refused. A curve cell is a JSON list of finite numbers, one per checkpoint; empty or `NaN` is a
 * run without a curve, and any other text (bad JSON, a non-list, a `null` or `NaN` element) is
 * refused. Rows repeating a configuration: the first stands for it (a warning says when their
 * metrics differ). A `filter` value matches as YAML types it (`8` keeps `8.0`, `true` keeps
 * `True`). `metric.direction`, if given, must be the task's; a task's own `searchSpace` may vary
 * only these parameters' paths, and give each only values of its column. See `bench/data/README.md` for every rule.
 *
 * @example
 * ```yaml
 * backend:
 *   kind: simulator
 *   table: ../data/nmthpo_scratch_final.csv
 *   filter: { lang_pair: ja-en }
 *   parameters:
 *     - { column: initial_lr, path: training.learningRate, kind: log }
 *     - { column: num_layers, path: training.extra.num_layers, kind: ordinal }
 *   metric: { column: dev_bleu }
 *   cost: { column: num_updates, scale: 0.1 }
 * ```
 * @since 0.1.0 @category schemas
 */
export const SimulatorConfig = Schema.Struct({
  kind: Schema.Literal("simulator"),
  table: Schema.NonEmptyString,
  filter: Schema.optionalKey(Schema.Record(Schema.String, Value)),
  parameters: Schema.Array(Schema.Struct({
    column: Schema.NonEmptyString,
    path: Schema.NonEmptyString,
    kind: Schema.optionalKey(SearchSpace.Parameter.fields.kind)
  })).check(Schema.isMinLength(1)),
  metric: Schema.optionalKey(Schema.Struct({
    column: Schema.optionalKey(Schema.NonEmptyString),
    direction: Schema.optionalKey(Task.Direction)
  })),
  // one struct, not a union of the two kinds: a union reports every member's complaints at once
  // (a bad scale read as `cost.column: Expected no excess property`); decodeConfig checks the rest
  cost: Schema.optionalKey(Schema.Struct({
    column: Schema.optionalKey(Schema.NonEmptyString),
    scale: Schema.optionalKey(Schema.Finite),
    seconds: Schema.optionalKey(Schema.Finite)
  })),
  curve: Schema.optionalKey(Schema.Struct({
    column: Schema.NonEmptyString,
    name: Schema.optionalKey(Schema.NonEmptyString),
    split: Schema.optionalKey(Schema.NonEmptyString),
    reduce: Schema.optionalKey(Schema.Literals(["none", "best"]))
  })),
  id: Schema.optionalKey(Schema.NonEmptyString),
  gpus: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThan(0))),
  /**
   * Rows that repeat a configuration: the first recorded run stands for it either way; `warn` (the
   * default) says so once when their metrics differ, `first` is the task's word that it knows.
   */
  repeats: Schema.optionalKey(Schema.Literals(["warn", "first"])),
  /**
   * A trial whose configuration the table never ran (a point of a declared grid it lacks): `nearest`
   * (the default) replays the nearest recorded row, and its summary names that row, its values and the
   * distance; `fail` fails the trial instead, with a message naming them (the search goes on).
   */
  unrecorded: Schema.optionalKey(Schema.Literals(["nearest", "fail"])),
  /**
   * What the simulated compute costs, as for every backend (`Backend.Pricing`): read by the run's
   * wiring, which prices the simulator's jobs with `Backend.priced` (the simulator itself reports
   * no dollars).
   */
  pricing: Schema.optionalKey(Backend.Pricing)
})
/** @since 0.1.0 @category models */
export type SimulatorConfig = typeof SimulatorConfig.Type

// decoded under a `backend` key, so every issue names its path in the task file (`backend.cost.scale`)
const Section = Schema.Struct({ backend: SimulatorConfig })

/** What the schema cannot check: each path once, one kind of cost, a positive scale, a non-negative constant. */
const configIssues = (config: SimulatorConfig): Array<string> => {
  const issues: Array<string> = []
  config.parameters.forEach((p, j) => {
    const i = config.parameters.findIndex((q) => q.path === p.path)
    if (i < j) {
      issues.push(`  backend.parameters[${j}].path: ${p.path} is already backend.parameters[${i}]'s path (column ${config.parameters[i]!.column}); ` +
        `a strategy field takes its value from one column: remove one of the two entries, or give this one another path`)
    }
  })
  const cost = config.cost
  if (cost === undefined) return issues
  const kinds = "give either column (each run's cost from that column, times scale) or seconds (the same cost for every run)"
  if (cost.column !== undefined && cost.seconds !== undefined) issues.push(`  backend.cost: ${kinds}, not both`)
  else if (cost.column === undefined && cost.seconds === undefined) issues.push(`  backend.cost: ${kinds}`)
  if (cost.scale !== undefined && cost.column === undefined && cost.seconds !== undefined) {
    issues.push("  backend.cost.scale applies to a cost column: remove it (seconds is already the cost of a run)")
  } else if (cost.scale !== undefined && cost.scale <= 0) {
    issues.push(`  backend.cost.scale must be greater than 0, got ${cost.scale}: it converts the cost column into simulated seconds ` +
      `(e.g. 60 for a column in minutes); leave it out for a column in seconds`)
  }
  if (cost.seconds !== undefined && cost.seconds < 0) issues.push(`  backend.cost.seconds must be 0 or more, got ${cost.seconds}`)
  return issues
}

/**
 * Decode a task's `backend` record as a {@link SimulatorConfig}; errors name each bad field by its
 * path in the task file (`backend.cost.scale`), and `source` (the task file) in their first line.
 * @since 0.1.0 @category decoding
 */
export const decodeConfig = (input: unknown, source = "backend"): Effect.Effect<SimulatorConfig, Errors.InvalidInput> =>
  Schema.decodeUnknownEffect(Section)({ backend: input }, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) =>
      new Errors.InvalidInput({ source, message: `invalid simulator backend in ${source}:\n${TaskFile.formatIssues(e, Section.ast)}` })
    ),
    Effect.flatMap(({ backend: config }) => {
      const issues = configIssues(config)
      return issues.length === 0
        ? Effect.succeed(config)
        : Effect.fail(new Errors.InvalidInput({ source, message: `invalid simulator backend in ${source}:\n${issues.join("\n")}` }))
    })
  )

/** The strategy a landscape's values are set on (see {@link strategyOf}): one data source, LoRA when a path needs it. */
const baseStrategy = (
  paths: ReadonlyArray<string>,
  sources: ReadonlyArray<{ readonly name: string; readonly weight?: SearchSpace.Value | undefined }>,
  rationale: string
) =>
  Strategy.decodeSync({
    data: { sources },
    training: {
      learningRate: 1e-3,
      epochs: 1,
      batchSize: 1,
      ...(paths.some((p) => p.startsWith("training.lora.")) ? { method: "lora", lora: { rank: 8 } } : {})
    },
    rationale
  })

/**
 * The check TaskFile makes of a search-space parameter, on a table's value: set on a strategy, it
 * must decode (strictly). An unknown key means the path names no field (an error of the task file);
 * any other issue, a cell a strategy cannot hold.
 */
const valueCheck = (config: SimulatorConfig, name: string) => {
  const base = baseStrategy(config.parameters.map((p) => p.path), [{ name }], "")
  return (k: number, value: SearchSpace.Value, line: number): string | undefined => {
    const p = config.parameters[k]!
    const why = TaskFile.valueIssues(base, p.path, value)
    if (why === undefined) return undefined
    if (why.includes(": Expected no excess property")) {
      return `  backend.parameters[${k}].path: ${p.path} names no field of a strategy (${TaskFile.PATH_HINT}):\n${why.replace(/^ {2}/gm, "    ")}`
    }
    const issues = why.split("\n").map((l) => l.trim().replace(`${p.path}: `, "")).join("; ")
    return `  line ${line}, column "${p.column}": ${JSON.stringify(value)} is not a valid ${p.path} (backend.parameters[${k}]): ${issues}. ` +
      `Correct the cell, or delete the row`
  }
}

/**
 * The name and split of the intermediate points a simulated task's trials report (its table's
 * curve: `backend.curve.name`, else the metric column, else the task's metric; split
 * `backend.curve.split`, else `dev`), or `undefined` when its table has no curve.
 * @since 0.1.0 @category getters
 */
export const curvePoints = (config: SimulatorConfig, metric: Task.Metric): { readonly name: string; readonly split: string } | undefined =>
  config.curve === undefined ? undefined : { name: config.curve.name ?? config.metric?.column ?? metric.name, split: config.curve.split ?? "dev" }

/**
 * Read a recorded table into a landscape. `dir` resolves a relative `table`; `metric` supplies
 * the metric column and direction the config leaves out; `source` (the task file) is named in
 * errors, with the table, its line and column. Every value the filter keeps must make a valid
 * strategy at its parameter's path; every metric a finite number (or be empty or `NaN`: a run that
 * diverged, which fails), every cost a non-negative one (or be empty or `NaN`: costed at the
 * median) and every curve a JSON list of finite numbers (or be empty or `NaN`: no curve). Logs a warning when rows repeat a configuration with another metric (the first stands).
 * @since 0.1.0 @category constructors
 */
export const loadTable = Effect.fn("Simulator.loadTable")(function*(
  config: SimulatorConfig,
  options: { readonly dir: string; readonly metric: Task.Metric; readonly name?: string; readonly source?: string }
) {
  const file = path.resolve(options.dir, config.table)
  // every message names the table and the task file that names it
  const table = `${file} (backend.table of ${options.source ?? "the task"})`
  const invalid = (message: string) => new Errors.InvalidInput({ source: file, message })
  const name = options.name ?? path.basename(file, ".csv")
  const bytes = yield* Effect.try({
    try: () => fs.readFileSync(file),
    catch: (e) => invalid(`cannot read the simulator table ${table}: ${(e as Error).message}`)
  })
  const { landscape, warnings } = yield* Effect.try({
    try: () =>
      fromCsv(parseCsv(decodeCsv(bytes)), {
        name,
        filter: config.filter ?? {},
        parameters: config.parameters.map((p) => ({ column: p.column, path: p.path, kind: p.kind ?? "ordinal" })),
        metric: {
          column: config.metric?.column ?? options.metric.name,
          direction: config.metric?.direction ?? options.metric.direction
        },
        cost: config.cost?.column !== undefined
          ? { column: config.cost.column, scale: config.cost.scale ?? 1 }
          : { seconds: config.cost?.seconds ?? 0 },
        ...(config.curve !== undefined
          ? { curve: { column: config.curve.column, ...curvePoints(config, options.metric)!, reduce: config.curve.reduce ?? "none" } }
          : {}),
        ...(config.id !== undefined ? { idColumn: config.id } : {}),
        check: valueCheck(config, name)
      }),
    catch: (e) =>
      e instanceof TableIssues
        ? invalid(`invalid simulator table ${table}:\n${e.issues.join("\n")}`)
        : invalid(`simulator table ${table}: ${(e as Error).message}`)
  })
  if (config.repeats !== "first") for (const w of warnings) yield* Effect.logWarning(`simulator table ${table}: ${w} (repeats: first in the task's backend section says it is known)`)
  return landscape
})

/**
 * The landscape of a simulator task: decodes `task.backend` and reads its table relative to `dir`.
 * Pass the task's `file` (`TaskFile.Loaded.file`) so errors name it.
 * @since 0.1.0 @category constructors
 */
export const fromTask = Effect.fn("Simulator.fromTask")(function*(task: Task.Task, dir: string, file?: string) {
  const source = file ?? `task ${task.name}`
  if (task.backend === undefined) {
    return yield* new Errors.InvalidInput({ source, message: `${source} has no backend section: a simulated task names its table there, as in backend: { kind: simulator, table: runs.csv, parameters: [...], metric: { column: ... } } (see examples/recorded-table/task.yaml)` })
  }
  const config = yield* decodeConfig(task.backend, source)
  const issues = taskIssues(task, config)
  if (issues.length > 0) return yield* new Errors.InvalidInput({ source, message: `invalid simulated task ${source}:\n${issues.join("\n")}` })
  const table = yield* loadTable(config, { dir, metric: task.metric, name: task.name, source })
  const unrecorded = [...valueIssues(task, table), ...defaultIssues(task, table)]
  if (unrecorded.length > 0) return yield* new Errors.InvalidInput({ source, message: `invalid simulated task ${source}:\n${unrecorded.join("\n")}` })
  // a space of the task's own: its strategies replay the configurations recorded inside it
  const landscape: Landscape = {
    ...table,
    ...(task.searchSpace !== undefined ? { space: task.searchSpace } : {}),
    ...(config.unrecorded !== undefined ? { unrecorded: config.unrecorded } : {})
  }
  const never = unrecordedWarning(task, landscape)
  if (never !== undefined) yield* Effect.logWarning(`${source}: ${never}`)
  return { config, landscape }
})

/**
 * The values a declared search space gives a table's parameter must be values the table has: a trial
 * replays the nearest row, so one it lacks replays a row another value replays too (its trials are
 * wasted), and one a strategy cannot hold (a learning rate of 0) is proposed, refused and never run.
 */
const valueIssues = (task: Task.Task, landscape: Landscape): Array<string> => {
  const issues: Array<string> = []
  task.searchSpace?.parameters.forEach((p, i) => {
    const column = landscape.parameters.find((q) => q.path === p.path)
    if (column === undefined) return
    const missing = p.values.flatMap((v, j) => (column.values.includes(v) ? [] : [j]))
    if (missing.length === 0) return
    const shown = (vs: ReadonlyArray<SearchSpace.Value>) => vs.map((v) => JSON.stringify(v)).join(", ")
    issues.push(`  searchSpace.parameters[${i}].values[${missing[0]}]: ${shown(missing.map((j) => p.values[j]!))} ${missing.length === 1 ? "is" : "are"} not among the values ` +
      `of column ${column.column} (${shown(column.values.slice(0, 20))}${column.values.length > 20 ? `, ... ${column.values.length} in all` : ""}): a trial replays the row ` +
      `its values match, nearest first, so a value the table lacks replays a row another value replays too. List values of the column, ` +
      `or leave searchSpace out (the table's own is used)`)
  })
  return issues
}

/**
 * A default strategy of the task file's own, where the table gives the search space (a declared
 * `searchSpace` was checked against it when the task was read): its values must be a configuration the
 * table recorded, as the table's median default is, or its trials replay the nearest rows.
 */
const defaultIssues = (task: Task.Task, landscape: Landscape): Array<string> => {
  if (task.defaultStrategy === undefined || task.searchSpace !== undefined) return []
  return TaskFile.defaultStrategyIssues(searchSpace(landscape), task.defaultStrategy, {
    values: (i) => `the values of column ${landscape.parameters[i]!.column}`,
    points: "the configurations the table recorded",
    otherwise: "or leave defaultStrategy out (the table's median configuration is the baseline then)"
  })
}

/**
 * What a task and its table must agree on: the direction (the search ranks trials by the task's,
 * the regret and a curve's best-so-far by the table's), and the paths a declared search space
 * varies (a trial replays the row of the table's parameters alone).
 */
const taskIssues = (task: Task.Task, config: SimulatorConfig): Array<string> => {
  const issues: Array<string> = []
  const direction = config.metric?.direction
  if (direction !== undefined && direction !== task.metric.direction) {
    issues.push(`  backend.metric.direction: ${direction}, but the task's metric.direction is ${task.metric.direction}: the search ` +
      `would keep the ${task.metric.direction === "maximize" ? "largest" : "smallest"} ${config.metric?.column ?? task.metric.name} ` +
      `while the table's best is its ${direction === "maximize" ? "largest" : "smallest"}, and head for its worst row. ` +
      `Say the direction once, in metric.direction, and remove backend.metric.direction`)
  }
  const paths = config.parameters.map((p) => p.path)
  task.searchSpace?.parameters.forEach((p, i) => {
    if (paths.includes(p.path)) return
    issues.push(`  searchSpace.parameters[${i}].path: ${p.path} is no parameter of the table (backend.parameters: ${paths.join(", ")}): ` +
      `a trial replays the row its table parameters match, so every value of ${p.path} replays the same row and its trials are wasted. ` +
      `Add its column to backend.parameters, or remove it from searchSpace (without a searchSpace, the table's own is used)`)
  })
  return issues
}

/** What a synthetic landscape is made of. @since 0.1.0 @category models */
export interface SyntheticConfig {
  readonly parameters: ReadonlyArray<SearchSpace.Parameter>
  readonly seed?: number
  /** Noise standard deviation on each point's score (default 0.02). */
  readonly noise?: number
  /** Cost of every run in simulated seconds (default 0); with `heavyTail`, the scale of a Pareto law. */
  readonly seconds?: number
  /** Pareto shape (e.g. 1.5) for heavy-tailed run costs, truncated at 100 times `seconds`. */
  readonly heavyTail?: number
  /** Intermediate points per run (default 0). */
  readonly curvePoints?: number
  readonly direction?: Task.Direction
  readonly name?: string
}

/**
 * A seeded synthetic landscape: the full grid over the parameters, scored by a smooth function
 * (a hidden optimum, weights, neighbour interactions) plus noise; metric `score`, in about [0, 1].
 * @since 0.1.0 @category constructors
 */
export const synthetic = (config: SyntheticConfig): Landscape =>
  makeSynthetic({
    name: config.name ?? "synthetic",
    parameters: config.parameters,
    seed: config.seed ?? 0,
    noise: config.noise ?? 0.02,
    seconds: config.seconds ?? 0,
    ...(config.heavyTail !== undefined ? { heavyTail: config.heavyTail } : {}),
    curvePoints: config.curvePoints ?? 0,
    direction: config.direction ?? "maximize"
  })

/** The search space of a landscape: its parameters and their distinct values. @since 0.1.0 @category getters */
export const searchSpace = (landscape: Landscape): SearchSpace.SearchSpace => ({
  parameters: landscape.parameters.map((p) => ({ path: p.path, kind: p.kind, values: p.values })),
  points: L.configurations(landscape).map((pt) => pt.values)
})

/**
 * The row a strategy replays, as a trial's job does and the baseline is chosen: the configuration the
 * table recorded with exactly its values, else the nearest one (each parameter normalised to [0, 1],
 * log scale for `log`, squared and summed; a categorical mismatch counts 1; ties to the earlier row).
 * With the task's own search space (`landscape.space`), among the configurations recorded inside it,
 * when it holds any.
 * @since 0.1.0 @category utilities
 */
export const match = (landscape: Landscape, strategy: Strategy.Strategy): Match =>
  L.match(landscape, L.valuesOf(landscape, strategy), inside(landscape, landscape.space))

/** The configurations of a landscape inside a space (none when the space holds none): those its strategies replay. */
const inside = (landscape: Landscape, space: SearchSpace.SearchSpace | undefined): ReadonlySet<Point> | undefined => {
  if (space === undefined) return undefined
  let bySpace = insideRows.get(landscape)
  if (bySpace === undefined) insideRows.set(landscape, bySpace = new WeakMap())
  let rows = bySpace.get(space)
  if (rows === undefined) bySpace.set(space, rows = new Set(L.configurations(landscape).filter((p) => isInside(space, strategyOf(landscape, p)))))
  return rows
}
const insideRows = new WeakMap<Landscape, WeakMap<SearchSpace.SearchSpace, ReadonlySet<Point>>>()

/** The distinct configurations of the pool (the first recorded run of each). @since 0.1.0 @category getters */
export const configurations = (landscape: Landscape): ReadonlyArray<Point> => L.configurations(landscape)

/** Best and worst scores of the pool, or of `rows`, some of its configurations. @since 0.1.0 @category getters */
export const range = (landscape: Landscape, rows?: ReadonlyArray<Point>): { readonly best: number; readonly worst: number } =>
  L.extremes(landscape, rows)

/**
 * Normalised regret of a found score: `(best - found) / (best - worst)`, sign-aware (0 = the best, 1 =
 * the worst), of the pool or of `rows`, some of its configurations: those a task's search can reach
 * ({@link reachable}).
 * @since 0.1.0 @category utilities
 */
export const regret = (landscape: Landscape, found: number, rows?: ReadonlyArray<Point>): number => {
  const { best, worst } = L.extremes(landscape, rows)
  return best === worst ? 0 : (best - found) / (best - worst)
}

/** The most grid points {@link reachable} replays one by one; a larger grid is bounded by the rows inside it. */
const GRID_LIMIT = 100_000

/**
 * The configurations a task's search can replay, over which its regret is normalised: every one the
 * table recorded when the task declares no search space of its own (the table's own is the space).
 * With one (`landscape.space`), the rows its points replay, each point set on the task's default
 * strategy (parameters the space leaves out keep the default's values) and matched as a trial is
 * ({@link match}; under `unrecorded: fail` only exact matches, the others failing): the space's
 * `points`, else its grid, up to 100,000 points; a larger grid, the configurations recorded inside it.
 * `task` is the task as {@link completeTask} gives it (its default strategy). Walked once per landscape
 * and default strategy: asked again, the same array.
 * @since 0.1.0 @category utilities
 */
export const reachable = (landscape: Landscape, task: Pick<Task.Task, "defaultStrategy">): ReadonlyArray<Point> => {
  // a benchmark asks for every seed and method
  let byBase = reachableRows.get(landscape)
  if (byBase === undefined) reachableRows.set(landscape, byBase = new WeakMap())
  const key = task.defaultStrategy ?? landscape
  let rows = byBase.get(key)
  if (rows === undefined) byBase.set(key, rows = reachableOf(landscape, task.defaultStrategy))
  return rows
}
const reachableRows = new WeakMap<Landscape, WeakMap<object, ReadonlyArray<Point>>>()

const reachableOf = (landscape: Landscape, given: Strategy.Strategy | undefined): ReadonlyArray<Point> => {
  const space = landscape.space
  if (space === undefined) return L.configurations(landscape)
  const base = given ?? defaultStrategy(landscape, space)
  if (space.points === undefined && SearchSpace.size(space) > GRID_LIMIT) {
    const rows = inside(landscape, space)!
    return rows.size > 0 ? [...rows] : L.configurations(landscape)
  }
  const rows = new Set<Point>()
  replays(landscape, space, base, (_, found) => {
    if (found.distance === 0 || landscape.unrecorded !== "fail") rows.add(found.point)
  })
  // (in file order, as the pool's)
  return L.configurations(landscape).filter((p) => rows.has(p))
}

/** Each point of a space (its `points`, else its grid) set on `base`, and the row a trial of it replays. */
const replays = (
  landscape: Landscape,
  space: SearchSpace.SearchSpace,
  base: Strategy.Strategy,
  each: (point: ReadonlyArray<SearchSpace.Value>, found: Match, strategy: Strategy.Strategy) => void
): void => {
  const visit = (point: ReadonlyArray<SearchSpace.Value>) => {
    const strategy = SearchSpace.applyPoint(space, base, point)
    each(point, match(landscape, strategy), strategy)
  }
  if (space.points !== undefined) {
    for (const point of space.points) visit(point)
    return
  }
  // the grid, odometer-wise
  const at = space.parameters.map(() => 0)
  for (;;) {
    visit(at.map((k, i) => space.parameters[i]!.values[k]!))
    let i = 0
    while (i < at.length && ++at[i]! === space.parameters[i]!.values.length) at[i++] = 0
    if (i === at.length) return
  }
}

/**
 * The warning a declared space earns when some of its points are configurations the table never ran (their
 * trials replay another row), unless the task says what to do with them (`backend.unrecorded`); grids of
 * more than 100,000 points are not counted.
 */
const unrecordedWarning = (task: Task.Task, landscape: Landscape): string | undefined => {
  const space = landscape.space
  if (space === undefined || landscape.unrecorded !== undefined || SearchSpace.size(space) > GRID_LIMIT) return undefined
  let count = 0
  let first: ReadonlyArray<unknown> | undefined
  replays(landscape, space, task.defaultStrategy ?? defaultStrategy(landscape, space), (_, found, strategy) => {
    if (found.distance === 0) return
    count++
    first ??= L.valuesOf(landscape, strategy)
  })
  if (count === 0) return undefined
  return `${count} of the ${SearchSpace.size(space)} points of searchSpace ${count === 1 ? "is a configuration" : "are configurations"} the table never ran ` +
    `(the first: ${L.describe(landscape, first!)}): ${count === 1 ? "its trial replays" : "their trials replay"} the nearest recorded row, as its summary says. ` +
    `Say unrecorded: fail in the backend section to fail them instead, or unrecorded: nearest to keep this and silence the warning`
}

/**
 * The strategy of one point: a generic base (one data source named after the landscape, or the
 * mixture's sources) with every parameter set to the point's value.
 * @since 0.1.0 @category constructors
 */
export const strategyOf = (landscape: Landscape, point: Point, rationale = `row ${point.id} of ${landscape.name}`): Strategy.Strategy => {
  const mixture = landscape.parameters.flatMap((p, i) => (L.isMixture(p.path) ? [{ name: L.mixtureSource(p.path), weight: point.values[i] }] : []))
  let s = baseStrategy(landscape.parameters.map((p) => p.path), mixture.length > 0 ? mixture : [{ name: landscape.name }], rationale)
  landscape.parameters.forEach((p, i) => {
    if (!L.isMixture(p.path)) s = SearchSpace.set(s, p.path, point.values[i]!)
  })
  return Strategy.decodeSync(s)
}

/**
 * The task with what its table provides filled in: the search space (the table's distinct values
 * and its pool of recorded configurations) and a default strategy, where the task file has none.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@trex/executors"
 * declare const task: import("@trex/core").Task.Task
 * const complete = Effect.map(Simulator.fromTask(task, "bench/tasks"), ({ landscape }) => Simulator.completeTask(task, landscape))
 * ```
 * @since 0.1.0 @category utilities
 */
export const completeTask = (task: Task.Task, landscape: Landscape): Task.Task => ({
  ...task,
  searchSpace: task.searchSpace ?? searchSpace(landscape),
  defaultStrategy: task.defaultStrategy ?? defaultStrategy(landscape, task.searchSpace)
})

/**
 * A starting strategy: the row the median value of every parameter replays, as a trial of those
 * values replays it ({@link match}: exact, else nearest). With the task's own search space (`space`: the
 * one {@link fromTask} gives the landscape), the median of the values it gives a parameter (the table's median
 * value may be one it leaves out, and the search then started outside the space it declares), and the
 * row a trial of them replays: the configuration recorded inside the space nearest them (with `points`,
 * one of them). A space none of whose configurations the table recorded gets its point nearest the
 * medians (a grid's: the medians; by the same distance, ties to the earlier point), set on the row the
 * medians match, which its trials replay as every trial of that space does.
 * @since 0.1.0 @category constructors
 */
export const defaultStrategy = (landscape: Landscape, space?: SearchSpace.SearchSpace): Strategy.Strategy => {
  const medians = landscape.parameters.map((p) => {
    const declared = space?.parameters.find((q) => q.path === p.path)?.values
    const kept = declared === undefined ? [] : p.values.filter((v) => declared.includes(v))
    const values = kept.length > 0 ? kept : p.values
    return values[(values.length - 1) >> 1]!
  })
  const rationale = `the median configuration of ${landscape.name}`
  const rows = inside(landscape, space)
  const matched = strategyOf(landscape, L.match(landscape, medians, rows).point, rationale)
  if (space === undefined || rows!.size > 0) return matched
  // no recorded configuration lies inside the space: its point nearest the medians
  const declared = space.parameters.map((q) => medians[landscape.parameters.findIndex((p) => p.path === q.path)] ?? q.values[0]!)
  if (space.points === undefined || space.points.length === 0) return SearchSpace.applyPoint(space, matched, declared)
  const column = space.parameters.map((q) => landscape.parameters.findIndex((p) => p.path === q.path))
  const at = (point: ReadonlyArray<SearchSpace.Value>) => {
    const values = [...medians]
    column.forEach((k, i) => k >= 0 && (values[k] = point[i]!))
    return L.distance(landscape, values, medians)
  }
  let nearest = space.points[0]!
  for (const point of space.points) if (at(point) < at(nearest)) nearest = point
  return SearchSpace.applyPoint(space, matched, nearest)
}

/** Whether a strategy lies inside a space: each value it sets one of its parameter's, and with points, a point's. */
const isInside = (space: SearchSpace.SearchSpace, strategy: Strategy.Strategy): boolean => {
  const { values, offPool } = SearchSpace.outside(space, strategy)
  return values.length === 0 && !offPool
}

/** Tuning of the simulated cluster. @since 0.1.0 @category models */
export interface SimulatorOptions {
  /** GPU slots; each job takes one (default: the config's `gpus`, else 1). */
  readonly gpus?: number
  /**
   * Quiet scheduler rounds before the clock moves (default 16). Raise it if the code that
   * reacts to a job's exit does more asynchronous hops before its next submit.
   */
  readonly settleTurns?: number
}

/** The simulator: a backend plus its simulated clock. @since 0.1.0 @category models */
export interface SimulatorShape extends Backend.BackendShape {
  readonly landscape: Landscape
  /** Simulated seconds since the simulator started. */
  readonly clock: Effect.Effect<number>
  /** Busy GPU-seconds / (gpus × elapsed simulated seconds); 0 before time moves. */
  readonly utilisation: Effect.Effect<number>
  /** Busy GPU-seconds so far (running jobs included). */
  readonly busyGpuSeconds: Effect.Effect<number>
}

const backendError = (operation: string, message: string) =>
  new Errors.BackendError({ backend: "simulator", operation, message, retryable: false })

/** Why a trial fails under `unrecorded: fail`: its configuration, the row it would replay, and the two ways on. */
const unrecordedMessage = (landscape: Landscape, values: ReadonlyArray<unknown>, found: Match): string =>
  `${landscape.name}: the table has no run of this configuration (${L.describe(landscape, values)}), and backend.unrecorded is fail: ` +
  `not replayed from the nearest row, ${found.point.id} (distance ${found.distance.toFixed(4)}: ${L.describe(landscape, found.point.values)}). ` +
  `Add its run to the table, or set unrecorded: nearest to replay that row`

const readStrategy = (spec: Backend.JobSpec, landscape: Landscape): Work | undefined => {
  const file = spec.files.find((f) => f.path === JobProtocol.STRATEGY_FILE || f.path.endsWith(`/${JobProtocol.STRATEGY_FILE}`))
  if (file === undefined) return undefined
  try {
    const strategy = JobProtocol.readStrategyFile(file.content)
    const values = L.valuesOf(landscape, strategy)
    const found = L.match(landscape, values, inside(landscape, landscape.space))
    if (found.distance === 0 || landscape.unrecorded !== "fail") return { _tag: "Point", match: found, values }
    return { _tag: "Invalid", message: unrecordedMessage(landscape, values, found) }
  } catch (e) {
    return { _tag: "Invalid", message: `strategy.json is not a valid strategy: ${(e as Error).message.split("\n")[0]}` }
  }
}

/** A finished job's events for a new watcher (what `Engine.watch` would queue), taken from its buffer. */
const replay = (engine: Engine, job: SimJob): ReadonlyArray<Backend.JobEvent> => {
  const events = [...job.buffer, job.exit!]
  job.buffer.length = 0
  engine.touch()
  return events
}

/**
 * Build a simulator over a landscape; its clock driver lives as long as the scope.
 * @since 0.1.0 @category constructors
 */
export const make = (landscape: Landscape, options: SimulatorOptions = {}): Effect.Effect<SimulatorShape, never, Scope.Scope> =>
  Effect.gen(function*() {
    const engine = new Engine(landscape, Math.max(1, options.gpus ?? 1))
    yield* Effect.forkScoped(drive(engine, Math.max(1, options.settleTurns ?? 16)))
    // A job of an earlier simulator (a controller that restarted) never really ran: retryable,
    // so the executor submits it again to this one.
    const unknown = (ref: { readonly id: string }, operation: string) =>
      new Errors.BackendError({ backend: "simulator", operation, message: `unknown simulator job ${ref.id} (the simulator restarted)`, retryable: true })
    const job = (ref: { readonly id: string }, operation: string) => {
      const j = engine.jobs.get(ref.id)
      return j === undefined ? Effect.fail(unknown(ref, operation)) : Effect.succeed(j)
    }
    return Backend.make({
      name: "simulator",
      landscape,
      submit: (spec) =>
        Effect.suspend(() => {
          const work = readStrategy(spec, landscape)
          return work === undefined
            ? Effect.fail(backendError("submit", `job ${spec.name} has no ${JobProtocol.STRATEGY_FILE} in its files`))
            : Effect.succeed(engine.submit(spec.labels, work).ref)
        }),
      watch: (ref) =>
        Stream.suspend((): Stream.Stream<Backend.JobEvent, Errors.BackendError> => {
          const j = engine.jobs.get(ref.id)
          if (j === undefined) return Stream.fail(unknown(ref, "watch"))
          // A finished job (every zero-cost job, which finishes inside its submit) replays what it
          // printed and its exit, with no queue to feed (the replay counts as activity).
          return j.exit !== undefined && j.watchers.length === 0
            ? Stream.fromIterable(replay(engine, j))
            : Stream.callback<Backend.JobEvent>((queue) =>
              Effect.acquireRelease(Effect.sync(() => engine.watch(j, queue)), () => Effect.sync(() => engine.unwatch(j, queue)))
            ).pipe(Stream.tap(() => Effect.sync(() => engine.touch())))
        }),
      cancel: (ref) => Effect.flatMap(job(ref, "cancel"), (j) => Effect.sync(() => engine.cancel(j))),
      // a job waiting for a simulated GPU is taken back; one that has one runs on
      withdraw: (ref) =>
        Effect.flatMap(job(ref, "withdraw"), (j) =>
          Effect.sync(() => {
            if (j.state !== "Pending") return false
            engine.cancel(j)
            return true
          })),
      list: (run) => Effect.sync(() => engine.list(run)),
      capacity: Effect.sync(() => ({ slots: engine.gpus, gpus: engine.gpus, inUse: engine.inUse })),
      clock: Effect.sync(() => engine.now),
      busyGpuSeconds: Effect.sync(() => engine.busy()),
      utilisation: Effect.sync(() => (engine.now === 0 ? 0 : engine.busy() / (engine.gpus * engine.now)))
    } satisfies SimulatorShape)
  })

const both = (effect: Effect.Effect<SimulatorShape, Errors.InvalidInput, Scope.Scope>) =>
  Layer.effectContext(Effect.map(effect, (sim) => Context.make(Simulator, sim).pipe(Context.add(Backend.Backend, sim))))

/**
 * The simulator service. Its layers provide both `Simulator` (clock, utilisation, landscape)
 * and core's `Backend`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Simulator } from "@trex/executors"
 * const landscape = Simulator.synthetic({ parameters: [{ path: "training.learningRate", kind: "log", values: [1e-4, 1e-3] }] })
 * const program = Effect.gen(function*() {
 *   const sim = yield* Simulator.Simulator
 *   return yield* sim.clock
 * }).pipe(Effect.provide(Simulator.Simulator.layer(landscape, { gpus: 2 })))
 * ```
 * @since 0.1.0 @category services
 */
export class Simulator extends Context.Service<Simulator, SimulatorShape>()("@trex/executors/Simulator") {
  /** Over a landscape already built. */
  static readonly layer = (landscape: Landscape, options: SimulatorOptions = {}) => both(make(landscape, options))
  /** Over a task's recorded table (`task.backend`), resolved against the task file's directory. */
  static readonly layerTable = (config: { readonly task: Task.Task; readonly dir: string; readonly file?: string } & SimulatorOptions) =>
    both(Effect.flatMap(fromTask(config.task, config.dir, config.file), ({ config: c, landscape }) =>
      make(landscape, {
        gpus: config.gpus ?? c.gpus ?? 1,
        ...(config.settleTurns !== undefined ? { settleTurns: config.settleTurns } : {})
      })))
  /** Over a seeded synthetic landscape. */
  static readonly layerSynthetic = (config: SyntheticConfig & SimulatorOptions) => both(make(synthetic(config), config))
}
