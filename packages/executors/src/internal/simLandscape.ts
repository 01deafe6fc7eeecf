/**
 * Landscapes: the finite pools of recorded (or generated) outcomes the simulator replays,
 * and the mapping from a strategy to its point (exact, else nearest).
 */
import { SearchSpace, type Strategy, type Task } from "@trex/core"
import type { Cell } from "./simCsv.ts"

/** A varied column: where its value lives in a strategy, its kind, its distinct values (sorted). */
export interface LandscapeParameter {
  readonly column: string
  readonly path: string
  readonly kind: SearchSpace.Parameter["kind"]
  readonly values: ReadonlyArray<SearchSpace.Value>
}

/** One distinct configuration of the pool and its recorded outcome. */
export interface Point {
  /** The row's id (an `id`/`run_id` column when present, else `line N`, the line of the file it starts on). */
  readonly id: string
  /** One value per parameter, in the landscape's parameter order. */
  readonly values: ReadonlyArray<SearchSpace.Value>
  /** The primary metric; `undefined` for a run that failed (diverged, missing). */
  readonly score: number | undefined
  /** Simulated duration of the run in seconds. */
  readonly seconds: number
  /** Every numeric column of the row (parameters included). */
  readonly metrics: Readonly<Record<string, number>>
  /** Intermediate values of the metric (may be empty). */
  readonly curve: ReadonlyArray<number>
  /** Why the run has no score, for failed points. */
  readonly failure?: string
}

/** How curve points are reported. */
export interface CurveSpec {
  readonly name: string
  readonly split: string
  /** `best`: report the best value so far (what a trainer with checkpoint selection reports). */
  readonly reduce: "none" | "best"
}

/** A pool of points over declared parameters. */
export interface Landscape {
  readonly name: string
  readonly parameters: ReadonlyArray<LandscapeParameter>
  readonly metric: { readonly column: string; readonly direction: Task.Direction }
  readonly curve?: CurveSpec
  readonly points: ReadonlyArray<Point>
  /**
   * The search space of the task replayed, when it declares one of its own: a strategy replays the
   * configuration nearest it among those the table recorded inside that space (see {@link match}).
   */
  readonly space?: SearchSpace.SearchSpace
  /**
   * What a trial whose configuration the table never ran does: `nearest` (the default) replays the
   * nearest recorded row and says so in its summary; `fail` fails it, naming that row.
   */
  readonly unrecorded?: "nearest" | "fail"
}

/** How a strategy matched the pool. */
export interface Match {
  readonly point: Point
  /** Normalised distance to the strategy (0 for an exact match). */
  readonly distance: number
}

const mixturePrefix = "data.mixture."

/** Round like `SearchSpace.get` does for mixture weights, so exact matches survive renormalisation. */
export const roundWeight = (w: number): number => Math.round(w * 1e9) / 1e9

const sameValue = (a: unknown, b: SearchSpace.Value): boolean =>
  a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)))

/** Distinct values of a column, numbers ascending then strings. */
export const distinct = (values: Iterable<SearchSpace.Value>): Array<SearchSpace.Value> => {
  const set = new Set<SearchSpace.Value>(values)
  return [...set].sort((a, b) => {
    if (typeof a === "number" && typeof b === "number") return a - b
    if (typeof a === "number") return -1
    if (typeof b === "number") return 1
    return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0
  })
}

/** A cell as a parameter value (lists and empty cells are not values). */
export const asValue = (c: Cell): SearchSpace.Value | undefined =>
  typeof c === "number" || typeof c === "string" ? c : undefined

interface Axis {
  readonly numeric: boolean
  readonly log: boolean
  readonly lo: number
  readonly span: number
  readonly index: Map<SearchSpace.Value, number>
}

interface Index {
  readonly axes: ReadonlyArray<Axis>
  /** The first point of each configuration, by `keyOf` its value indices. */
  readonly exact: Map<number | string, Point>
  /** Mixed-radix place values of the axes, when every key fits a safe integer. */
  readonly strides: ReadonlyArray<number> | undefined
  /** The match of each configuration looked up, by the rows it was matched among (`ALL`: every row). */
  readonly nearest: Map<ReadonlySet<Point>, Map<string, Match>>
}

/** Every row of a landscape, as the rows a configuration is matched among. */
const ALL: ReadonlySet<Point> = new Set()

const indexes = new WeakMap<Landscape, Index>()

const buildIndex = (landscape: Landscape): Index => {
  const axes = landscape.parameters.map((p): Axis => {
    const nums = p.values.filter((v): v is number => typeof v === "number")
    const numeric = nums.length === p.values.length && p.kind !== "categorical"
    const log = numeric && p.kind === "log" && nums.every((v) => v > 0)
    const coords = nums.map((v) => (log ? Math.log(v) : v))
    const lo = numeric ? Math.min(...coords) : 0
    const hi = numeric ? Math.max(...coords) : 0
    return { numeric, log, lo, span: hi - lo, index: new Map(p.values.map((v, i) => [v, i])) }
  })
  const size = axes.reduce((n, a) => n * Math.max(1, a.index.size), 1)
  const strides = size <= Number.MAX_SAFE_INTEGER ? placeValues(axes) : undefined
  const exact = new Map<number | string, Point>()
  for (const point of landscape.points) {
    const indices = point.values.map((v, i) => axes[i]!.index.get(v))
    // (every value of a point is one of its axis's values; a key of joined text if one were not)
    const key = indices.every((k) => k !== undefined) ? keyOf(strides, indices) : indices.join(",")
    // the first recorded run of a configuration stands for it (repeats differ by noise)
    if (!exact.has(key)) exact.set(key, point)
  }
  return { axes, exact, strides, nearest: new Map() }
}

const placeValues = (axes: ReadonlyArray<Axis>): Array<number> => {
  const out: Array<number> = []
  let place = 1
  for (const a of axes) {
    out.push(place)
    place *= Math.max(1, a.index.size)
  }
  return out
}

/** A configuration's key: one number (no string built per lookup), or its indices joined when they would not fit. */
const keyOf = (strides: ReadonlyArray<number> | undefined, indices: ReadonlyArray<number>): number | string => {
  if (strides === undefined) return indices.join(",")
  let key = 0
  for (let i = 0; i < indices.length; i++) key += indices[i]! * strides[i]!
  return key
}

const indexOf = (landscape: Landscape): Index => {
  let idx = indexes.get(landscape)
  if (idx === undefined) {
    idx = buildIndex(landscape)
    indexes.set(landscape, idx)
  }
  return idx
}

/** The distinct configurations of the pool (the first run of each), in file order. */
export const configurations = (landscape: Landscape): ReadonlyArray<Point> => [...indexOf(landscape).exact.values()]

const coordinate = (axis: Axis, v: number): number => (axis.span === 0 ? 0 : ((axis.log ? Math.log(Math.max(v, 1e-300)) : v) - axis.lo) / axis.span)

/**
 * How far apart two configurations are, squared: each numeric parameter's values placed on [0, 1]
 * between its smallest and largest recorded value (log scale for `log`), their differences squared and
 * summed; a categorical or non-numeric parameter adds 1 where the values differ.
 */
const apart = (idx: Index, a: ReadonlyArray<unknown>, b: ReadonlyArray<SearchSpace.Value>): number => {
  let d = 0
  for (let i = 0; i < a.length; i++) {
    const axis = idx.axes[i]!
    const v = a[i]
    const w = b[i]!
    if (axis.numeric && typeof v === "number" && typeof w === "number") {
      const diff = coordinate(axis, v) - coordinate(axis, w)
      d += diff * diff
    } else if (!sameValue(v, w)) {
      d += 1
    }
  }
  return d
}

/** The squared distance between two configurations of a landscape's parameters, as {@link match} measures it. */
export const distance = (landscape: Landscape, a: ReadonlyArray<unknown>, b: ReadonlyArray<SearchSpace.Value>): number =>
  apart(indexOf(landscape), a, b)

/** A strategy's value for each parameter (`SearchSpace.get`). */
export const valuesOf = (landscape: Landscape, strategy: Strategy.Strategy): Array<unknown> =>
  landscape.parameters.map((p) => SearchSpace.get(strategy, p.path))

/**
 * The row a configuration replays: the simulator's one rule of "nearest", for a trial and for the
 * baseline alike. The configuration the table recorded with exactly its values, else the nearest one
 * ({@link distance}: normalised to [0, 1], log scale for `log`, squared and summed; a categorical or
 * non-numeric mismatch counts 1), ties to the earlier row. With `among` (the rows inside a task's own
 * search space), only those rows: an empty set is every row (a space none of whose configurations the
 * table recorded).
 */
export const match = (landscape: Landscape, values: ReadonlyArray<unknown>, among: ReadonlySet<Point> = ALL): Match => {
  const idx = indexOf(landscape)
  const keyParts: Array<number> = []
  for (let i = 0; i < values.length; i++) {
    const axis = idx.axes[i]!
    let k = axis.index.get(values[i] as SearchSpace.Value)
    if (k === undefined && typeof values[i] === "number") {
      // tolerate float noise (mixture weights, decimal round trips)
      for (const [v, j] of axis.index) if (sameValue(values[i], v)) k = j
    }
    if (k === undefined) break
    keyParts.push(k)
  }
  const every = among.size === 0
  if (keyParts.length === values.length) {
    const hit = idx.exact.get(keyOf(idx.strides, keyParts))
    if (hit !== undefined && (every || among.has(hit))) return { point: hit, distance: 0 }
  }
  const rows = every ? ALL : among
  let cache = idx.nearest.get(rows)
  if (cache === undefined) idx.nearest.set(rows, cache = new Map())
  const cacheKey = JSON.stringify(values)
  const cached = cache.get(cacheKey)
  if (cached !== undefined) return cached
  let best: Match | undefined
  for (const point of idx.exact.values()) {
    if (!every && !among.has(point)) continue
    const d = apart(idx, values, point.values)
    if (best === undefined || d < best.distance) best = { point, distance: d }
  }
  if (best === undefined) throw new Error(`landscape ${landscape.name} has no points`)
  const found = { point: best.point, distance: Math.sqrt(best.distance) }
  cache.set(cacheKey, found)
  return found
}

/** A configuration's values, each named by its parameter's path: `training.learningRate 0.001, training.extra.optim "adamw"`. */
export const describe = (landscape: Landscape, values: ReadonlyArray<unknown>): string =>
  landscape.parameters.map((p, i) => `${p.path} ${JSON.stringify(values[i] ?? null)}`).join(", ")

/** Best and worst scores of the pool's configurations (or of `rows`, some of them), by direction. */
export const extremes = (
  landscape: Landscape,
  rows: Iterable<Point> = configurations(landscape)
): { readonly best: number; readonly worst: number } => {
  const sign = landscape.metric.direction === "maximize" ? 1 : -1
  let best = -Infinity
  let worst = Infinity
  for (const p of rows) {
    if (p.score === undefined) continue
    const u = sign * p.score
    if (u > best) best = u
    if (u < worst) worst = u
  }
  if (best === -Infinity) throw new Error(`landscape ${landscape.name} has no scored points`)
  return { best: sign * best, worst: sign * worst }
}

/** Whether a path is a mixture weight (`data.mixture.<source>`). */
export const isMixture = (path: string): boolean => path.startsWith(mixturePrefix)

/** The source name of a mixture path. */
export const mixtureSource = (path: string): string => path.slice(mixturePrefix.length)

/** A seeded PRNG (mulberry32): landscapes are pure data, built outside any Effect. */
export const prng = (seed: number): () => number => {
  let a = (seed >>> 0) ^ 0x9e3779b9
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
