/**
 * fast-check arbitraries for the JSON (encoded) form of core schemas. Every generated value
 * is valid: decoding it must succeed. Optional keys are sometimes absent, so decoding defaults
 * are exercised too.
 */
import fc from "fast-check"
import { SearchSpace, Strategy, type Task } from "@trex/core"

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [k: string]: Json }

/** Finite doubles, JSON-safe (no -0, which JSON cannot tell from 0). */
export const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }).map((x) => (x === 0 ? 0 : x))
export const positive = fc.double({ noNaN: true, min: 1e-9, max: 1e6, noDefaultInfinity: true })
export const nonNegative = fc.oneof(fc.constant(0), positive)
export const positiveInt = fc.integer({ min: 1, max: 1_000_000 })
export const name = fc.stringMatching(/^[a-z][a-z0-9_-]{0,11}$/)

/** Arbitrary JSON values, small. */
export const json: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    finite,
    fc.string({ maxLength: 8 }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(name, tie("value"), { maxKeys: 3 })
  )
})).value

export const extra = fc.dictionary(name, json, { maxKeys: 3 })

/** `{ key: value }` or `{}`: an optional key, present or absent. */
const opt = <A>(key: string, arb: fc.Arbitrary<A>): fc.Arbitrary<Record<string, A>> =>
  fc.option(arb, { nil: undefined }).map((v) => (v === undefined ? {} : { [key]: v }))

/** Merge records of optional keys into one object. */
const merge = (...parts: ReadonlyArray<fc.Arbitrary<Record<string, unknown>>>) =>
  fc.tuple(...parts).map((ps) => Object.assign({}, ...ps) as Record<string, unknown>)

const step = merge(fc.record({ kind: name }), opt("params", extra))

export const dataRecipe = merge(
  fc.record({
    sources: fc.uniqueArray(
      merge(fc.record({ name }), opt("weight", nonNegative), opt("split", name), opt("config", name), opt("maxExamples", positiveInt)),
      { maxLength: 3, selector: (s) => s["name"] }
    )
  }),
  opt("format", fc.constantFrom("default", "plain", "reversed", "scratchpad")),
  opt("numExamples", positiveInt),
  opt("filters", fc.array(step, { maxLength: 2 })),
  opt("transforms", fc.array(step, { maxLength: 2 })),
  opt("synthesis", merge(fc.record({ method: name, count: fc.nat(10_000) }), opt("params", extra))),
  opt("extra", extra)
)

export const lora = merge(
  fc.record({ rank: fc.constantFrom(2, 4, 8, 16, 64) }),
  opt("alpha", positive),
  opt("dropout", fc.double({ min: 0, max: 0.5, noNaN: true })),
  opt("targetModules", fc.array(name, { maxLength: 3 }))
)

export const trainingConfig = merge(
  fc.record({ learningRate: positive, epochs: positive, batchSize: positiveInt }),
  opt("method", fc.constantFrom("full", "lora", "qlora")),
  opt("schedule", fc.constantFrom("constant", "linear", "cosine")),
  opt("warmupRatio", fc.double({ min: 0, max: 1, noNaN: true })),
  opt("seed", fc.integer({ min: -1000, max: 1_000_000 })),
  opt("lora", lora),
  opt("maxSeqLength", positiveInt),
  opt("extra", extra)
)

export const evaluationPlan = merge(
  opt("splits", fc.array(name, { maxLength: 3 })),
  opt("metric", name),
  opt("maxExamples", positiveInt),
  opt("description", fc.string({ maxLength: 20 })),
  opt("extra", extra)
)

/** A strategy in its JSON form (`Strategy.StrategyEncoded`), with optional keys sometimes absent. */
export const strategyEncoded: fc.Arbitrary<Strategy.StrategyEncoded> = merge(
  fc.record({ data: dataRecipe, training: trainingConfig }),
  opt("evaluation", evaluationPlan),
  opt("rationale", fc.string({ maxLength: 40 }))
) as fc.Arbitrary<Strategy.StrategyEncoded>

// values that fit their path: a task's parameters must make valid strategies
const kind = fc.constantFrom("log", "ordinal", "categorical")
const valuesOf = <A>(value: fc.Arbitrary<A>) => fc.uniqueArray(value, { minLength: 1, maxLength: 4, comparator: "SameValueZero" })
const searchParameter = fc.oneof(
  fc.record({ path: fc.constantFrom("training.learningRate", "training.epochs"), kind, values: valuesOf(positive) }),
  fc.record({ path: fc.constant("data.format"), kind, values: valuesOf(name) }),
  fc.record({ path: fc.constant("data.mixture.b"), kind, values: valuesOf(fc.double({ min: 0, max: 1, noNaN: true })) }),
  fc.record({ path: fc.constant("training.extra.x"), kind, values: valuesOf(fc.oneof(finite, name, fc.boolean())) })
)

/**
 * A search space a task may declare: at least one parameter, each path once; its points, when
 * present, at least one, each a value per parameter from that parameter's values, each once.
 */
const searchSpace = fc.uniqueArray(searchParameter, { minLength: 1, maxLength: 3, selector: (p) => p.path }).chain((parameters) =>
  merge(
    fc.constant({ parameters }),
    opt(
      "points",
      fc.uniqueArray(fc.tuple(...parameters.map((p) => fc.constantFrom(...(p.values as ReadonlyArray<unknown>)))), {
        minLength: 1,
        maxLength: 3,
        selector: (pt) => JSON.stringify(pt)
      })
    )
  )
)

// no `{name}` in a recipe command: one that misspells a placeholder is refused
const commandPart = fc.string({ maxLength: 10 }).filter((s) => !/\{[A-Za-z_]\w*\}/.test(s))

const recipe = merge(
  fc.record({ command: fc.array(commandPart, { minLength: 1, maxLength: 3 }) }),
  opt("image", name),
  opt("env", fc.dictionary(name, fc.string({ maxLength: 8 }), { maxKeys: 2 })),
  opt(
    "resources",
    merge(opt("gpus", fc.nat(8)), opt("cpus", positive), opt("memoryMb", positiveInt), opt("timeLimitSeconds", positive))
  ),
  opt("estimate", merge(opt("gpuSeconds", positive), opt("wallSeconds", positive), opt("dollars", positive)))
)

export const budgetEncoded = merge(
  opt("maxTrials", positiveInt),
  opt("gpuHours", positive),
  opt("wallClockHours", positive),
  opt("dollars", positive),
  opt("tokens", positiveInt)
)

/**
 * The task with its default strategy on its search space, as a task file must have it: each value the
 * default sets is added to its parameter's values where they lack it, and to the points where none
 * has them. A default with a value no parameter can take (an object under `training.extra.x`) is left out.
 */
const defaultOnSpace = (task: Task.TaskEncoded): Task.TaskEncoded => {
  const space = task.searchSpace
  if (space === undefined || task.defaultStrategy === undefined) return task
  const strategy = Strategy.decodeSync(task.defaultStrategy)
  const values = space.parameters.map((p) => SearchSpace.get(strategy, p.path))
  if (values.some((v) => v !== undefined && typeof v !== "number" && typeof v !== "string" && typeof v !== "boolean")) {
    const { defaultStrategy: _, ...rest } = task
    return rest
  }
  const parameters = space.parameters.map((p, i) => {
    const v = values[i] as SearchSpace.Value | undefined
    return v === undefined || p.values.includes(v) ? p : { ...p, values: [...p.values, v] }
  })
  const on = { ...space, parameters }
  if (space.points === undefined || !SearchSpace.outside(on, strategy).offPool) return { ...task, searchSpace: on }
  const point = parameters.map((p, i) => (values[i] ?? p.values[0]) as SearchSpace.Value)
  return { ...task, searchSpace: { ...on, points: [...space.points, point] } }
}

/** A task in its JSON form (`Task.TaskEncoded`), its default strategy, if any, on its search space, if any. */
export const taskEncoded: fc.Arbitrary<Task.TaskEncoded> = merge(
  fc.record({
    name,
    objective: fc.string({ minLength: 1, maxLength: 30 }),
    metric: merge(fc.record({ name, direction: fc.constantFrom("maximize", "minimize") }), opt("target", finite))
  }),
  opt("baseModel", merge(fc.record({ name }), opt("uri", fc.string({ maxLength: 10 })), opt("parameters", name))),
  opt(
    "datasets",
    fc.array(
      merge(fc.record({ name }), opt("uri", name), opt("description", fc.string({ maxLength: 10 })), opt("splits", fc.array(name, { maxLength: 2 })), opt("license", name)),
      { maxLength: 3 }
    )
  ),
  opt("evaluation", evaluationPlan),
  opt("constraints", extra),
  opt("budget", budgetEncoded),
  opt("searchSpace", searchSpace),
  opt("defaultStrategy", strategyEncoded),
  opt("recipe", recipe),
  opt("backend", extra)
).map((task) => defaultOnSpace(task as Task.TaskEncoded))
