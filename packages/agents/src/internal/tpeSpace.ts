/**
 * What the baseline proposers (random search, TPE) share: points of a declared search space as
 * index vectors, their strategies, fingerprint bookkeeping and uniform sampling of untried points.
 */
import { Errors, Fingerprint, type Researcher, SearchSpace, type Strategy, type Task } from "@trex/core"
import { Effect, Random } from "effect"

/** A point of the space: one value index per parameter. */
export type Point = ReadonlyArray<number>

/** The space and the strategy its points are applied to. */
export interface Space {
  readonly space: SearchSpace.SearchSpace
  readonly base: Strategy.Strategy
}

/** The task's search space and default strategy, or a clear error. */
export const spaceOf = (task: Task.Task, operation: string): Effect.Effect<Space, Errors.ResearcherError> =>
  task.searchSpace === undefined || task.searchSpace.parameters.length === 0
    ? Effect.fail(new Errors.ResearcherError({
      operation,
      message: `task "${task.name}" declares no searchSpace: add searchSpace.parameters (a simulator task gets it from Simulator.searchSpace)`,
      retryable: false
    }))
    : task.defaultStrategy === undefined
    ? Effect.fail(new Errors.ResearcherError({
      operation,
      message: `task "${task.name}" has no defaultStrategy to apply the search space to`,
      retryable: false
    }))
    : Effect.succeed({ space: task.searchSpace, base: task.defaultStrategy })

/** The strategy at a point: the base with every parameter set (inactive ones held at the base's value). */
export const strategyAt = (s: Space, point: Point, rationale: string): Strategy.Strategy => {
  const out = SearchSpace.applyPoint(s.space, s.base, s.space.parameters.map((p, i) => p.values[point[i]!]!))
  return { ...SearchSpace.normalize(s.space, out, s.base), rationale }
}

/** The point a strategy sits on (nearest value per parameter). */
export const pointOf = (s: Space, strategy: Strategy.Strategy): Point =>
  s.space.parameters.map((p) => SearchSpace.indexOf(p, strategy))

/** A trivial analysis for a proposer that needs none. */
export const analysis = (task: Task.Task, s: Space, how: string): Researcher.Analysis => ({
  summary: `${how} over ${s.space.parameters.length} parameters (${SearchSpace.distinct(s.space)} combinations), ` +
    `${task.metric.direction === "maximize" ? "maximising" : "minimising"} ${task.metric.name}.`,
  metricNotes: "",
  dataNotes: "",
  risks: [],
  notes: {}
})

/** Tracks fingerprints already tried or already proposed in this batch. */
export const freshness = (tried: (fp: string) => boolean) => {
  const seen = new Set<string>()
  return (strategy: Strategy.Strategy): boolean => {
    const fp = Fingerprint.of(strategy)
    if (seen.has(fp) || tried(fp)) return false
    seen.add(fp)
    return true
  }
}

/** Spaces up to this size are enumerated, so sampling finds the last untried point. */
const enumerateUpTo = 4096

/** Each pool's index points, by its `points` list: a task's space is the same object for a whole run. */
const poolCache = new WeakMap<ReadonlyArray<unknown>, { readonly parameters: SearchSpace.SearchSpace["parameters"]; readonly points: ReadonlyArray<Point> }>()

/**
 * The configurations of a finite pool, as index points (undefined when the space is a full grid).
 * Computed once per pool (a recorded table of 100,000 rows took 30 ms a proposal to map again).
 */
export const poolPoints = (space: SearchSpace.SearchSpace): ReadonlyArray<Point> | undefined => {
  if (space.points === undefined || space.points.length === 0) return undefined
  const cached = poolCache.get(space.points)
  if (cached !== undefined && cached.parameters === space.parameters) return cached.points
  const index = space.parameters.map((p) => new Map(p.values.map((v, k) => [v, k] as const)))
  const points = space.points.map((values) => index.map((m, i) => m.get(values[i]!) ?? Math.max(0, space.parameters[i]!.values.indexOf(values[i]!))))
  poolCache.set(space.points, { parameters: space.parameters, points })
  return points
}

/** The number of points of the full grid (a pool, if any, is not counted). */
const gridSize = (space: SearchSpace.SearchSpace): number => space.parameters.reduce((acc, p) => acc * p.values.length, 1)

const pointAt = (space: SearchSpace.SearchSpace, flat: number): Point => {
  const out: Array<number> = []
  for (let i = space.parameters.length - 1; i >= 0; i--) {
    const k = space.parameters[i]!.values.length
    out[i] = flat % k
    flat = Math.floor(flat / k)
  }
  return out
}

/**
 * Up to `n` fresh strategies drawn uniformly from the space (without replacement). Small spaces
 * are enumerated and shuffled; large ones sampled with `attempts` tries per proposal.
 */
export const uniform = (
  s: Space,
  n: number,
  fresh: (strategy: Strategy.Strategy) => boolean,
  rationale: string,
  attempts = 64
): Effect.Effect<Array<Strategy.Strategy>> =>
  Effect.gen(function*() {
    const rng = yield* Random.Random
    const out: Array<Strategy.Strategy> = []
    const pool = poolPoints(s.space)
    if (pool !== undefined) {
      // a finite pool: a uniform draw among its configurations, without replacement (a lazy
      // Fisher-Yates shuffle: only the swapped places are held, not an order of the whole pool)
      const swapped = new Map<number, number>()
      const at = (k: number) => swapped.get(k) ?? k
      for (let i = 0; i < pool.length && out.length < n; i++) {
        const j = i + Math.floor(rng.nextDoubleUnsafe() * (pool.length - i))
        const picked = at(j)
        swapped.set(j, at(i))
        const strategy = strategyAt(s, pool[picked]!, rationale)
        if (fresh(strategy)) out.push(strategy)
      }
      return out
    }
    const size = gridSize(s.space)
    if (size <= enumerateUpTo) {
      // a lazy Fisher-Yates shuffle over flat indices: stop once n fresh points are found
      const order = Array.from({ length: size }, (_, i) => i)
      for (let i = 0; i < size && out.length < n; i++) {
        const j = i + Math.floor(rng.nextDoubleUnsafe() * (size - i))
        const tmp = order[i]!
        order[i] = order[j]!
        order[j] = tmp
        const strategy = strategyAt(s, pointAt(s.space, order[i]!), rationale)
        if (fresh(strategy)) out.push(strategy)
      }
      return out
    }
    for (let a = 0; a < attempts * n && out.length < n; a++) {
      const point = s.space.parameters.map((p) => Math.floor(rng.nextDoubleUnsafe() * p.values.length))
      const strategy = strategyAt(s, point, rationale)
      if (fresh(strategy)) out.push(strategy)
    }
    return out
  })
