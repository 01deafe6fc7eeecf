/**
 * A declared search space: the strategy fields a heuristic researcher or a simulator
 * may vary, each with its kind and its values.
 *
 * Paths are dotted paths into a {@link Strategy} (`training.learningRate`, `data.format`),
 * plus `data.mixture.<source>`: the weight of that source, the first source taking the rest.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Strategy from "./Strategy.ts"
import { billionthsOf } from "./internal/shares.ts"

const ValueSchema = Schema.Union([Schema.Finite, Schema.String, Schema.Boolean])

/**
 * When a parameter matters: only while the parameter at `path` has one of `values` (the LoRA
 * rank while `training.method` is `lora`, say), and only while that parameter matters itself. An
 * inactive parameter is held at the task's default value, so two strategies that differ only in it
 * are the same strategy.
 * @since 0.1.0 @category schemas
 */
export const Condition = Schema.Struct({
  path: Schema.NonEmptyString,
  values: Schema.Array(ValueSchema).check(Schema.isMinLength(1))
})
/** @since 0.1.0 @category models */
export type Condition = typeof Condition.Type

/**
 * A parameter: `log` (numbers stepped on a log scale), `ordinal` (ordered values, moved to a
 * neighbour) or `categorical` (unordered, swapped); with `when`, it matters only under a
 * condition on another parameter.
 * @since 0.1.0 @category schemas
 */
export const Parameter = Schema.Struct({
  path: Schema.NonEmptyString,
  kind: Schema.Literals(["log", "ordinal", "categorical"]),
  values: Schema.Array(ValueSchema).check(Schema.isMinLength(1)),
  when: Schema.optionalKey(Condition)
})
/** @since 0.1.0 @category models */
export type Parameter = typeof Parameter.Type
/** A parameter value. @since 0.1.0 @category models */
export type Value = Parameter["values"][number]

/**
 * The space: its parameters, and optionally a finite pool of valid configurations (`points`,
 * each a value per parameter in order) — a recorded table's rows, say — when not every
 * combination of values exists.
 * @since 0.1.0 @category schemas
 */
export const SearchSpace = Schema.Struct({
  parameters: Schema.Array(Parameter),
  points: Schema.optionalKey(Schema.Array(Schema.Array(ValueSchema)))
}).check(Schema.makeFilter((space) => {
  const issues = conditionIssues(space)
  return issues.length === 0 ? undefined : issues
}))
/** @since 0.1.0 @category models */
export type SearchSpace = typeof SearchSpace.Type

const mixturePrefix = "data.mixture."

const getPath = (obj: unknown, path: ReadonlyArray<string>): unknown => {
  let cur: unknown = obj
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** A copy of `obj` with `value` at `path[from..]`, copying only the objects on the path. */
const setPath = (obj: unknown, path: ReadonlyArray<string>, value: unknown, from = 0): unknown => {
  if (from === path.length) return value
  const head = path[from]!
  const base = obj !== null && typeof obj === "object" ? (obj as Record<string, unknown>) : {}
  return { ...base, [head]: setPath(base[head], path, value, from + 1) }
}

/** A parameter path's keys: the few paths of a search space are split once, not on every read and write. */
const splitPaths = new Map<string, ReadonlyArray<string>>()
const segments = (path: string): ReadonlyArray<string> => {
  let keys = splitPaths.get(path)
  if (keys === undefined) {
    keys = path.split(".")
    if (splitPaths.size < 4096) splitPaths.set(path, keys)
  }
  return keys
}

/**
 * Read a parameter's current value from a strategy.
 * @since 0.1.0 @category accessors
 */
export const get = (strategy: Strategy.Strategy, path: string): unknown => {
  if (path.startsWith(mixturePrefix)) {
    const name = path.slice(mixturePrefix.length)
    const sources = strategy.data.sources
    const index = sources.findIndex((s) => s.name === name)
    if (index < 0) return 0
    const share = billionthsOf(sources.map((s) => s.weight), index)
    return share === undefined ? 0 : share / 1e9
  }
  return getPath(strategy, segments(path))
}

/**
 * Return a copy of the strategy with the parameter set. Mixture weights keep the sources'
 * weights summing to 1: the named source takes `value` (clamped to [0, 1]), the others share the
 * rest in proportion (the first of them takes it all when they are all at 0; with no other source,
 * the named one takes 1), as {@link applyPoint} sets several at once. A path through an object the
 * strategy lacks (`training.lora.rank` without `training.lora`) makes that object with the defaults
 * decoding gives it (`alpha`, `dropout`), so the result is the strategy decoding would give, with
 * its fingerprint.
 * @since 0.1.0 @category combinators
 */
export const set = (strategy: Strategy.Strategy, path: string, value: Value): Strategy.Strategy => {
  if (path.startsWith(mixturePrefix)) {
    return setMixture(strategy, new Map([[path.slice(mixturePrefix.length), typeof value === "number" ? Math.min(1, Math.max(0, value)) : 0]]))
  }
  const keys = segments(path)
  const out = setPath(strategy, keys, value) as Strategy.Strategy
  return makesObject(strategy, keys) ? withDefaults(out) : out
}

/** Whether setting `path` makes an object the value lacks (only then may decoding's defaults be missing). */
const makesObject = (obj: unknown, path: ReadonlyArray<string>): boolean => {
  let cur = obj
  for (let i = 0; i < path.length - 1; i++) {
    if (cur === null || typeof cur !== "object") return true
    cur = (cur as Record<string, unknown>)[path[i]!]
  }
  return cur === null || typeof cur !== "object"
}

const decodeStrategy = Schema.decodeUnknownOption(Strategy.Strategy)
/** The strategy with the defaults decoding fills in; as it is when it does not decode (a value out of range). */
const withDefaults = (strategy: Strategy.Strategy): Strategy.Strategy => Option.getOrElse(decodeStrategy(strategy), () => strategy)

/**
 * Index of the parameter's value in the strategy among its declared values, or of the
 * nearest one (numbers compared on a log scale for `log`), so off-grid strategies still move.
 * @since 0.1.0 @category accessors
 */
export const indexOf = (param: Parameter, strategy: Strategy.Strategy): number => {
  const v = get(strategy, param.path)
  const exact = param.values.findIndex((x) => x === v)
  if (exact >= 0 || typeof v !== "number") return exact >= 0 ? exact : 0
  let best = 0
  let bestDist = Infinity
  param.values.forEach((x, i) => {
    if (typeof x !== "number") return
    const d = param.kind === "log" && x > 0 && v > 0 ? Math.abs(Math.log(x) - Math.log(v)) : Math.abs(x - v)
    if (d < bestDist) {
      bestDist = d
      best = i
    }
  })
  return best
}

/**
 * Number of points of the space: its pool's, else its grid's (the product of the parameters' value
 * counts, conditions or not; {@link distinct} counts the strategies they make).
 * @since 0.1.0 @category getters
 */
export const size = (space: SearchSpace): number =>
  space.points?.length ?? space.parameters.reduce((acc, p) => acc * p.values.length, 1)

/**
 * Number of distinct strategies the space holds: {@link size}, but with conditions (`when`) the grid's
 * points that differ only in parameters that do not matter there count once, as {@link normalize}
 * makes them one strategy (the quickstart's 288,000 grid points are 108,000 strategies).
 * @since 0.1.0 @category getters
 */
export const distinct = (space: SearchSpace): number => {
  if (space.points !== undefined) return space.points.length
  const named = new Set(space.parameters.flatMap((p) => (p.when === undefined ? [] : [p.when.path])))
  // the values of the parameters a condition names (undefined: inactive), each with how many points lead to them
  let states: Array<{ readonly values: ReadonlyMap<string, Value | undefined>; readonly count: number }> = [{ values: new Map(), count: 1 }]
  for (const p of space.parameters) {
    const next = new Map<string, { values: ReadonlyMap<string, Value | undefined>; count: number }>()
    const add = (values: ReadonlyMap<string, Value | undefined>, count: number) => {
      const key = JSON.stringify([...values].map(([k, v]) => [k, v === undefined ? { inactive: true } : v]))
      const had = next.get(key)
      if (had === undefined) next.set(key, { values, count })
      else had.count += count
    }
    for (const { count, values } of states) {
      const when = p.when
      const active = when === undefined || (values.get(when.path) !== undefined && when.values.some((x) => x === values.get(when.path)))
      if (!active) add(named.has(p.path) ? new Map([...values, [p.path, undefined]]) : values, count)
      else if (!named.has(p.path)) add(values, count * p.values.length)
      else for (const v of p.values) add(new Map([...values, [p.path, v]]), count)
    }
    states = [...next.values()]
  }
  return states.reduce((acc, s) => acc + s.count, 0)
}

/**
 * A strategy with every parameter set from a point of the pool. The point's mixture weights
 * (`data.mixture.<source>`) are set together, so each comes out exactly as the point has it,
 * whatever strategy the point is applied to (setting them one at a time with {@link set} would
 * rescale the earlier ones at each step); sources the space does not name share what the point
 * leaves, in their proportions.
 * @since 0.1.0 @category combinators
 */
export const applyPoint = (space: SearchSpace, strategy: Strategy.Strategy, point: ReadonlyArray<Value>): Strategy.Strategy => {
  let out = strategy
  const weights = new Map<string, number>()
  space.parameters.forEach((p, i) => {
    const v = point[i]!
    if (p.path.startsWith(mixturePrefix)) weights.set(p.path.slice(mixturePrefix.length), typeof v === "number" ? Math.min(1, Math.max(0, v)) : 0)
    else out = set(out, p.path, v)
  })
  return weights.size === 0 ? out : setMixture(out, weights)
}

/**
 * Set sources' weights (each in [0, 1]) at once: the named sources take theirs, the others share
 * the rest in proportion — the first of them takes it all when they are all at 0 — and are dropped
 * at 0. Named weights summing to more than 1, or with no other source to take the rest, are scaled
 * to sum to 1. Sources keep their order; new ones follow, in the order given. Weights are kept to 9
 * decimals.
 */
const setMixture = (strategy: Strategy.Strategy, weights: ReadonlyMap<string, number>): Strategy.Strategy => {
  let named = 0
  for (const w of weights.values()) named += w
  const others = strategy.data.sources.filter((s) => !weights.has(s.name))
  const othersTotal = others.reduce((acc, s) => acc + s.weight, 0)
  // a point summing to 1 up to rounding leaves nothing
  const rest = named < 1 - 1e-9 ? 1 - named : 0
  // divided, not multiplied by 1 / named: a tiny weight alone (5e-324) has no finite inverse
  const divisor = named > 1 || (others.length === 0 && named > 0) ? named : 1
  const first = others[0]
  const shareOf = (s: Strategy.Strategy["data"]["sources"][number]) =>
    othersTotal > 0 ? (s.weight / othersTotal) * rest : s === first ? rest : 0
  const round = (w: number) => Math.round(w * 1e9) / 1e9
  const sources: Array<Strategy.Strategy["data"]["sources"][number]> = []
  for (const s of strategy.data.sources) {
    const w = weights.get(s.name)
    if (w !== undefined) sources.push({ ...s, weight: round(w / divisor) })
    else {
      const share = round(shareOf(s))
      if (share > 0) sources.push({ ...s, weight: share })
    }
  }
  for (const [name, w] of weights) {
    if (!strategy.data.sources.some((s) => s.name === name)) sources.push({ name, weight: round(w / divisor) })
  }
  return { ...strategy, data: { ...strategy.data, sources } }
}

/**
 * A strategy's position in the space: each parameter's index among its values, scaled to [0, 1]
 * (nearest value for off-grid numbers). Distances between positions measure how far apart two
 * configurations are.
 * @since 0.1.0 @category accessors
 */
export const position = (space: SearchSpace, strategy: Strategy.Strategy): Array<number> =>
  space.parameters.map((p) => (p.values.length <= 1 ? 0 : indexOf(p, strategy) / (p.values.length - 1)))

/** The position of a pool point. @since 0.1.0 @category accessors */
export const pointPosition = (space: SearchSpace, point: ReadonlyArray<Value>): Array<number> =>
  space.parameters.map((p, i) => {
    if (p.values.length <= 1) return 0
    const exact = p.values.indexOf(point[i]!)
    return (exact >= 0 ? exact : 0) / (p.values.length - 1)
  })

/**
 * What is wrong with the space's conditions, each at its path: a `when` must name another
 * parameter of the space, declared before it, with values that parameter has.
 */
const conditionIssues = (space: {
  readonly parameters: ReadonlyArray<Parameter>
}): Array<{ readonly path: ReadonlyArray<PropertyKey>; readonly issue: string }> => {
  const issues: Array<{ readonly path: ReadonlyArray<PropertyKey>; readonly issue: string }> = []
  space.parameters.forEach((p, i) => {
    if (p.when === undefined) return
    const at = ["parameters", i, "when"]
    const j = space.parameters.findIndex((q) => q.path === p.when!.path)
    if (j < 0 || j === i) {
      const others = space.parameters.filter((q) => q.path !== p.path).map((q) => q.path)
      issues.push({
        path: [...at, "path"],
        issue: `"${p.when.path}" is not another parameter of the search space; name one of: ${others.join(", ") || "(none)"}`
      })
      return
    }
    if (j > i) {
      issues.push({ path: [...at, "path"], issue: `"${p.when.path}" is declared after "${p.path}"; declare it first` })
      return
    }
    const known = space.parameters[j]!.values
    const unknown = p.when.values.filter((v) => !known.includes(v))
    if (unknown.length > 0) {
      issues.push({
        path: [...at, "values"],
        issue: `${unknown.map((v) => JSON.stringify(v)).join(", ")} not among the values of "${p.when.path}": ${known.map((v) => JSON.stringify(v)).join(", ")}`
      })
    }
  })
  return issues
}

/**
 * Whether a parameter matters for a strategy: it has no condition, or the parameter its
 * condition names has one of the listed values.
 * @since 0.1.0 @category predicates
 */
export const isActive = (param: Parameter, strategy: Strategy.Strategy): boolean => {
  if (param.when === undefined) return true
  const v = get(strategy, param.when.path)
  return param.when.values.some((x) => x === v)
}

/**
 * Hold every inactive parameter at its value in `reference` (the task's default strategy; its
 * first value when the reference has none), in declaration order (so a condition sees the value
 * its own parameter ends with; a parameter whose condition names an inactive one is inactive too), so that strategies differing only in parameters that do not
 * matter become the same strategy — and are never run twice. Returns `strategy` itself when
 * nothing changes.
 * @since 0.1.0 @category combinators
 */
export const normalize = (space: SearchSpace, strategy: Strategy.Strategy, reference: Strategy.Strategy): Strategy.Strategy => {
  let out = strategy
  // a parameter whose condition names an inactive one is inactive too, whatever value that one is held at
  // (held at the value its dependant's condition names, it made the dependant seem to matter)
  const inactive = new Set<string>()
  for (const p of space.parameters) {
    if (p.when === undefined || (!inactive.has(p.when.path) && isActive(p, out))) continue
    inactive.add(p.path)
    const want = (get(reference, p.path) ?? p.values[0]) as Value
    if (get(out, p.path) === want) continue
    out = set(out, p.path, want)
  }
  return out
}

/**
 * The parameter's value that `read` (a value read with {@link get}) is: the same value, or for a
 * mixture weight the same share to the 9 decimals `get` rounds it to (`1 / 3` for 0.333333333; an
 * equal value first); `undefined` when it is none of them.
 * @since 0.1.0 @category accessors
 */
export const declaredValue = (param: Parameter, read: unknown): Value | undefined =>
  param.values.find((v) => v === read) ??
    (param.path.startsWith(mixturePrefix) && typeof read === "number"
      ? param.values.find((v) => typeof v === "number" && Math.round(read * 1e9) === Math.round(v * 1e9))
      : undefined)

/**
 * Where a strategy lies outside the space: each parameter whose value in it ({@link get}) is not
 * one of the parameter's values (`values`, with the parameter's index), and, when every value it
 * sets is one, whether no point of the pool has them (`offPool`; always false without a pool). A
 * parameter the strategy leaves unset is not judged (the recipe's default runs), nor, for the
 * pool, one whose condition does not hold (it is held at the strategy's value, as {@link normalize}
 * holds it). The check a task's default strategy passes when the task is read.
 * @since 0.1.0 @category predicates
 */
export const outside = (space: SearchSpace, strategy: Strategy.Strategy): {
  readonly values: ReadonlyArray<{ readonly index: number; readonly value: unknown }>
  readonly offPool: boolean
} => {
  const values: Array<{ readonly index: number; readonly value: unknown }> = []
  space.parameters.forEach((p, index) => {
    const value = get(strategy, p.path)
    if (value !== undefined && declaredValue(p, value) === undefined) values.push({ index, value })
  })
  const points = space.points
  if (values.length > 0 || points === undefined || points.length === 0) return { values, offPool: false }
  const held = normalize(space, strategy, strategy)
  const inactive = new Set<string>()
  const judged: Array<{ readonly i: number; readonly value: Value | undefined }> = []
  space.parameters.forEach((p, i) => {
    if (p.when !== undefined && (inactive.has(p.when.path) || !isActive(p, held))) inactive.add(p.path)
    else {
      const value = get(held, p.path)
      if (value !== undefined) judged.push({ i, value: declaredValue(p, value) })
    }
  })
  return { values, offPool: !points.some((pt) => judged.every(({ i, value }) => value === pt[i])) }
}

/** Whether any parameter of the space has a condition. @since 0.1.0 @category predicates */
export const isConditional = (space: SearchSpace): boolean => space.parameters.some((p) => p.when !== undefined)
