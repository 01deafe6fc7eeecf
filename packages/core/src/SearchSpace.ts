/**
 * A declared search space: the strategy fields a heuristic researcher or a simulator
 * may vary, each with its kind and its values.
 *
 * Paths are dotted paths into a {@link Strategy} (`training.learningRate`, `data.format`),
 * plus `data.mixture.<source>`: the weight of that source, the first source taking the rest.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type * as Strategy from "./Strategy.ts"

/**
 * A parameter: `log` (numbers stepped on a log scale), `ordinal` (ordered values, moved to a
 * neighbour) or `categorical` (unordered, swapped).
 * @since 0.1.0 @category schemas
 */
export const Parameter = Schema.Struct({
  path: Schema.NonEmptyString,
  kind: Schema.Literals(["log", "ordinal", "categorical"]),
  values: Schema.Array(Schema.Union([Schema.Finite, Schema.String, Schema.Boolean])).check(Schema.isMinLength(1))
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
  points: Schema.optionalKey(Schema.Array(Schema.Array(Schema.Union([Schema.Finite, Schema.String, Schema.Boolean]))))
})
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

const setPath = (obj: unknown, path: ReadonlyArray<string>, value: unknown): unknown => {
  if (path.length === 0) return value
  const [head, ...rest] = path as [string, ...Array<string>]
  const base = obj !== null && typeof obj === "object" ? (obj as Record<string, unknown>) : {}
  return { ...base, [head]: setPath(base[head], rest, value) }
}

/**
 * Read a parameter's current value from a strategy.
 * @since 0.1.0 @category accessors
 */
export const get = (strategy: Strategy.Strategy, path: string): unknown => {
  if (path.startsWith(mixturePrefix)) {
    const name = path.slice(mixturePrefix.length)
    const sources = strategy.data.sources
    const total = sources.reduce((acc, s) => acc + s.weight, 0)
    const src = sources.find((s) => s.name === name)
    if (src === undefined) return 0
    return total > 0 ? Math.round((src.weight / total) * 1e9) / 1e9 : 0
  }
  return getPath(strategy, path.split("."))
}

/**
 * Return a copy of the strategy with the parameter set. Mixture weights keep the sources'
 * weights summing to 1: the named source takes `value`, the others share the rest in
 * proportion (the first source takes it all when the others are 0).
 * @since 0.1.0 @category combinators
 */
export const set = (strategy: Strategy.Strategy, path: string, value: Value): Strategy.Strategy => {
  if (path.startsWith(mixturePrefix)) {
    const name = path.slice(mixturePrefix.length)
    const w = typeof value === "number" ? Math.min(1, Math.max(0, value)) : 0
    const others = strategy.data.sources.filter((s) => s.name !== name)
    const othersTotal = others.reduce((acc, s) => acc + s.weight, 0)
    const rest = 1 - w
    const reweighted = others.map((s, i) => ({
      ...s,
      weight: othersTotal > 0 ? (s.weight / othersTotal) * rest : i === 0 ? rest : 0
    }))
    const existing = strategy.data.sources.find((s) => s.name === name)
    const sources = [...reweighted, { ...(existing ?? { name }), weight: w }]
      .filter((s) => s.weight > 0 || s.name === name)
      .map((s) => ({ ...s, weight: Math.round(s.weight * 1e9) / 1e9 }))
    // keep the original order of sources
    const order = strategy.data.sources.map((s) => s.name)
    sources.sort((a, b) => (order.indexOf(a.name) + 1 || 1e9) - (order.indexOf(b.name) + 1 || 1e9))
    return { ...strategy, data: { ...strategy.data, sources } }
  }
  return setPath(strategy, path.split("."), value) as Strategy.Strategy
}

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

/** Number of distinct points in the space. @since 0.1.0 @category getters */
export const size = (space: SearchSpace): number =>
  space.points?.length ?? space.parameters.reduce((acc, p) => acc * p.values.length, 1)

/** A strategy with every parameter set from a point of the pool. @since 0.1.0 @category combinators */
export const applyPoint = (space: SearchSpace, strategy: Strategy.Strategy, point: ReadonlyArray<Value>): Strategy.Strategy =>
  space.parameters.reduce((s, p, i) => set(s, p.path, point[i]!), strategy)

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
