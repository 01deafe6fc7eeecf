/**
 * A fine-tuning task: the objective, the metric and its direction, the base model,
 * the data at hand, the evaluation plan, constraints and the budget. Optionally a declared
 * search space, a default strategy, and the recipe and backend settings for execution.
 *
 * @since 0.1.0
 */
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Budget from "./Budget.ts"
import { Extra, JsonRecord, listOf, Positive, PositiveInt, withDefault } from "./internal/schema.ts"
import * as SearchSpace from "./SearchSpace.ts"
import * as Strategy from "./Strategy.ts"

/** Whether a larger or a smaller metric is better. @since 0.1.0 @category schemas */
export const Direction = Schema.Literals(["maximize", "minimize"])
/** @since 0.1.0 @category models */
export type Direction = typeof Direction.Type

/** The metric to optimise. @since 0.1.0 @category schemas */
export const Metric = Schema.Struct({
  name: Schema.NonEmptyString,
  direction: Direction,
  target: Schema.optionalKey(Schema.Finite)
})
/** @since 0.1.0 @category models */
export type Metric = typeof Metric.Type

/** A dataset the task can use. @since 0.1.0 @category schemas */
export const Dataset = Schema.Struct({
  name: Schema.NonEmptyString,
  uri: Schema.optionalKey(Schema.String),
  description: Schema.optionalKey(Schema.String),
  splits: Schema.optionalKey(Schema.Array(Schema.String)),
  license: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type Dataset = typeof Dataset.Type

/** The base model to fine-tune. @since 0.1.0 @category schemas */
export const BaseModel = Schema.Struct({
  name: Schema.NonEmptyString,
  uri: Schema.optionalKey(Schema.String),
  parameters: Schema.optionalKey(Schema.String)
})

/** Resources one trial needs. @since 0.1.0 @category schemas */
export const Resources = Schema.Struct({
  gpus: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).pipe(withDefault(0)),
  cpus: Positive.pipe(withDefault(1)),
  memoryMb: Schema.optionalKey(PositiveInt),
  timeLimitSeconds: Schema.optionalKey(Positive)
})
/** @since 0.1.0 @category models */
export type Resources = typeof Resources.Type

/**
 * The placeholders of a recipe's command and environment values, substituted per job by the
 * executors (`{taskDir}`, ...).
 * @since 0.1.0 @category constants
 */
export const PLACEHOLDERS = ["taskDir", "run", "node", "execPath"] as const
/** @since 0.1.0 @category models */
export type Placeholder = typeof PLACEHOLDERS[number]

// `${run}` is left alone (a shell's variable, in a `sh -c` script), and so is `{{run}}` (an f-string's literal `{run}`)
const placeholderPattern = new RegExp(`(?<![$\\{])\\{(${PLACEHOLDERS.join("|")})\\}(?!\\})`, "g")

/**
 * Substitute the placeholders in one part of a recipe's command or one of its environment values;
 * any other `{word}` stays as it is, and so do a shell's `${node}` and an f-string's `{{node}}`.
 *
 * @example
 * ```ts
 * import { Task } from "@trex/core"
 * Task.substitute("{taskDir}/data", { taskDir: "/tasks/mt", run: "r1", node: "n3", execPath: "/usr/bin/node" }) // "/tasks/mt/data"
 * ```
 * @since 0.1.0 @category utilities
 */
export const substitute = (text: string, values: Readonly<Record<Placeholder, string>>): string =>
  text.replace(placeholderPattern, (_, k: Placeholder) => values[k])

/**
 * A recipe's environment for one job: each value with its placeholders substituted ({@link substitute}).
 * @since 0.1.0 @category utilities
 */
export const substituteEnv = (env: Readonly<Record<string, string>>, values: Readonly<Record<Placeholder, string>>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) out[k] = substitute(v, values)
  return out
}

/** An environment variable's name, as a shell takes it. @since 0.1.0 @category schemas */
export const EnvName = Schema.String.check(Schema.makeFilter((name: string) =>
  /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
    ? undefined
    : `expected an environment variable's name (letters, digits and _, not beginning with a digit, e.g. HF_TOKEN), got ${JSON.stringify(name)}`
))

/**
 * How the template executor runs a strategy: a command (argv) with placeholders
 * `{taskDir}`, `{run}`, `{node}` and `{execPath}` only (substituted in `env` values too) — strategy
 * values never enter the command line; the job reads them from `strategy.json`. `estimate` is the cost a running
 * trial reserves against the budget.
 * @since 0.1.0 @category schemas
 */
export const Recipe = Schema.Struct({
  command: Schema.Array(Schema.String).check(Schema.isMinLength(1)),
  image: Schema.optionalKey(Schema.String),
  env: Schema.Record(Schema.String, Schema.String).pipe(withDefault({})),
  /**
   * Names of variables of trex's own environment that every job gets as secrets (`[HF_TOKEN,
   * WANDB_API_KEY]`): their values are read when a run starts or resumes, never written to the
   * task, the journal or a report, and reach each job as its backend passes secrets (a `0600` file,
   * a Kubernetes Secret); a run refuses to start while one of them is not set (see {@link secretValues}).
   */
  secretEnv: Schema.optionalKey(Schema.Array(EnvName)),
  resources: Resources.pipe(withDefault({})),
  estimate: Schema.optionalKey(
    Schema.Struct({ gpuSeconds: Schema.optionalKey(Positive), wallSeconds: Schema.optionalKey(Positive), dollars: Schema.optionalKey(Positive) })
  )
})
/** @since 0.1.0 @category models */
export type Recipe = typeof Recipe.Type

/**
 * A task. Only `name`, `objective` and `metric` are required.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Task } from "@trex/core"
 * const task = Schema.decodeUnknownSync(Task.Task)({
 *   name: "sst2",
 *   objective: "Classify movie-review sentiment",
 *   metric: { name: "accuracy", direction: "maximize", target: 0.95 },
 *   budget: { maxTrials: 20 }
 * })
 * ```
 * @since 0.1.0 @category schemas
 */
export const Task = Schema.Struct({
  name: Schema.NonEmptyString,
  objective: Schema.NonEmptyString,
  metric: Metric,
  baseModel: Schema.optionalKey(BaseModel),
  datasets: listOf(Dataset),
  evaluation: Strategy.EvaluationPlan.pipe(withDefault({})),
  constraints: Extra,
  budget: Budget.Budget.pipe(withDefault({})),
  searchSpace: Schema.optionalKey(SearchSpace.SearchSpace),
  defaultStrategy: Schema.optionalKey(Strategy.Strategy),
  recipe: Schema.optionalKey(Recipe),
  backend: Schema.optionalKey(JsonRecord)
})
/** @since 0.1.0 @category models */
export type Task = typeof Task.Type
/** @since 0.1.0 @category models */
export type TaskEncoded = typeof Task.Encoded

/**
 * Why `budget` (the task's unless given) cannot be strict for this task, if it cannot (what
 * `budget.strict` does and the fix, to follow the field's name): a strict
 * budget holds each trial at its time limit's worth, so the recipe needs a time limit. The one
 * statement of the rule, for the task file, `Explorer.run` and the CLI.
 * @since 0.1.0 @category validation
 */
export const strictWithoutLimit = (task: Task, budget: Budget.Budget = task.budget): string | undefined =>
  budget.strict === true && task.recipe?.resources.timeLimitSeconds === undefined
    ? "holds each trial at the most it can cost, which its time limit bounds: set recipe.resources.timeLimitSeconds, or leave strict out"
    : undefined

/**
 * A score as utility: larger is always better.
 * @since 0.1.0 @category utilities
 */
export const utility = (task: Pick<Task, "metric">, score: number): number =>
  task.metric.direction === "maximize" ? score : -score

/** Whether `a` is a better score than `b` for this task. @since 0.1.0 @category utilities */
export const isBetter = (task: Pick<Task, "metric">, a: number, b: number): boolean => utility(task, a) > utility(task, b)

/** Whether a score reaches the task's target. @since 0.1.0 @category utilities */
export const reachesTarget = (task: Pick<Task, "metric">, score: number): boolean => {
  const t = task.metric.target
  return t !== undefined && utility(task, score) >= utility(task, t)
}

/**
 * The values of a recipe's `secretEnv` in `environment` (trex's own, `process.env`), each `Redacted`,
 * and the names that are not set there (or set empty).
 *
 * @example
 * ```ts
 * import { Task } from "@trex/core"
 * const { missing, values } = Task.secretValues({ secretEnv: ["HF_TOKEN"] }, { HF_TOKEN: "hf_abc" })
 * // values.HF_TOKEN is Redacted; missing is []
 * ```
 * @since 0.1.0 @category utilities
 */
export const secretValues = (
  recipe: { readonly secretEnv?: ReadonlyArray<string> | undefined } | undefined,
  environment: Readonly<Record<string, string | undefined>>
): { readonly values: Readonly<Record<string, Redacted.Redacted<string>>>; readonly missing: ReadonlyArray<string> } => {
  const values: Record<string, Redacted.Redacted<string>> = {}
  const missing: Array<string> = []
  for (const name of recipe?.secretEnv ?? []) {
    const value = environment[name]
    if (value === undefined || value === "") missing.push(name)
    else values[name] = Redacted.make(value, { label: name })
  }
  return { values, missing }
}
