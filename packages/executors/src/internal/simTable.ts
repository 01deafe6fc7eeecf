/**
 * Build a landscape from a parsed CSV table and the simulator's column mapping, and a
 * synthetic one (a seeded smooth function with noise) for tests.
 */
import { type SearchSpace, type Task, TaskFile } from "@trex/core"
import { type Csv, cell, numberList, numeric, shortened } from "./simCsv.ts"
import {
  asValue,
  type CurveSpec,
  distinct,
  isMixture,
  type Landscape,
  type LandscapeParameter,
  type Point,
  prng,
  roundWeight
} from "./simLandscape.ts"

/** The column mapping, with defaults already applied. */
export interface TableSpec {
  readonly name: string
  readonly filter: Readonly<Record<string, string | number | boolean>>
  readonly parameters: ReadonlyArray<Omit<LandscapeParameter, "values">>
  readonly metric: { readonly column: string; readonly direction: Task.Direction }
  readonly cost: { readonly column: string; readonly scale: number } | { readonly seconds: number }
  readonly curve?: CurveSpec & { readonly column: string }
  readonly idColumn?: string
  /**
   * What is wrong with parameter `k` taking `value` (first seen on `line`), as an issue line; checked
   * once per distinct value of each parameter, over the rows the filter keeps.
   */
  readonly check?: (k: number, value: SearchSpace.Value, line: number) => string | undefined
}

/** Thrown when rows the filter keeps hold values a run cannot have; one issue line each. */
export class TableIssues extends Error {
  readonly issues: ReadonlyArray<string>
  constructor(issues: ReadonlyArray<string>) {
    super(issues.join("\n"))
    this.issues = issues
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** A value in a column of numbers that reads as a number gone wrong: `inf`, `NaN`, a decimal comma, `0.8x`. */
const numberLike = (v: SearchSpace.Value): v is string =>
  typeof v === "string" && /^\s*([+-]?(\d|\.\d|inf|nan)|,\d)/i.test(v)

/**
 * The column a misspelt name most likely means: the same name in another case, a column it
 * contains or that contains it (`accuracy` / `acc`), an abbreviation (`grp` / `group`), else the
 * nearest by edits. Local to tables: column names are abbreviated more often than keys misspelt.
 */
export const meantColumn = (name: string, header: ReadonlyArray<string>): string | undefined => {
  const n = name.toLowerCase()
  const same = header.find((h) => h.toLowerCase() === n)
  if (same !== undefined) return same
  const contained = header
    .filter((h) => h.length >= 2 && n.length >= 2 && (h.toLowerCase().includes(n) || n.includes(h.toLowerCase())))
    .sort((a, b) => Math.abs(a.length - n.length) - Math.abs(b.length - n.length))
  if (contained.length > 0) return contained[0]
  const subsequence = (short: string, long: string) => {
    let i = 0
    for (const c of long) if (c === short[i]) i++
    return i === short.length
  }
  const abbreviated = header.filter((h) => n.length >= 2 && (subsequence(n, h.toLowerCase()) || subsequence(h.toLowerCase(), n)))
  return TaskFile.closest(name, abbreviated, Math.max(...abbreviated.map((h) => Math.abs(h.length - n.length)), 2)) ??
    TaskFile.closest(name, header)
}

/**
 * The issue line for a cell that is not what its column must hold: where, the value (shortened),
 * the task file's field that names the column, and the fix.
 */
const notA = (line: number, column: string, raw: string, what: string, field: string, problem: string): string =>
  `  line ${line}, column "${column}": ${JSON.stringify(shortened(raw.trim()))} is not ${what} (${field}): ${problem}`

const shown = (v: number | undefined): string => (v === undefined ? "no value" : String(v))

/**
 * Whether a cell holds a filter's value as the task file's YAML typed it: a number equals the cell's
 * number (`8` keeps `8.0`; so does `"8"`), a boolean the cell's `true` or `false` in any case
 * (Python writes `True`, and YAML reads an unquoted `True` as a boolean too), else the same text.
 */
const matches = (raw: string, want: string | number | boolean): boolean => {
  const c = cell(raw)
  if (typeof want === "boolean") return typeof c === "string" && c.toLowerCase() === String(want)
  const number = typeof want === "number" ? want : cell(want)
  if (typeof number === "number") return typeof c === "number" && c === number
  return raw.trim() === String(want).trim()
}

/**
 * Build the landscape; throws an `Error` whose message says which column or row is wrong. Also
 * returns warnings (one line each) about what the table holds that a trial can never return.
 */
export const fromCsv = (csv: Csv, spec: TableSpec): { readonly landscape: Landscape; readonly warnings: ReadonlyArray<string> } => {
  const col = new Map(csv.header.map((h, i) => [h, i]))
  // a column the task names that the table lacks: the task file's field, the column it most likely means, all columns
  const need = (name: string, field: string): number => {
    const i = col.get(name)
    if (i !== undefined) return i
    const meant = meantColumn(name, csv.header)
    throw new Error(`${field}: "${name}" is not a column of the table${meant !== undefined ? `; did you mean "${meant}"?` : ""} (columns: ${csv.header.join(", ")})`)
  }
  const filters = Object.entries(spec.filter).map(([k, v]) => [need(k, `backend.filter.${k}`), v] as const)
  const paramCols = spec.parameters.map((p, k) => need(p.column, `backend.parameters[${k}].column`))
  const metricCol = need(spec.metric.column, "backend.metric.column (default: the task's metric name)")
  const costCol = "column" in spec.cost ? need(spec.cost.column, "backend.cost.column") : undefined
  const curveCol = spec.curve !== undefined ? need(spec.curve.column, "backend.curve.column") : undefined
  const idCol = spec.idColumn !== undefined ? need(spec.idColumn, "id") : col.get("run_id") ?? col.get("id")
  const statusCol = col.get("status")
  const mixture = spec.parameters.map((p) => isMixture(p.path))
  const scale = "column" in spec.cost ? spec.cost.scale : 1

  if (csv.rows.length === 0) {
    throw new Error("the table has no data rows, only a header line: add one row per finished run")
  }

  const drafts: Array<Omit<Point, "seconds"> & { seconds: number | undefined; line: number }> = []
  // the first bad value of each parameter and of the cost: one issue each, not one per row
  const issues: Array<string> = []
  // each parameter's distinct values and the line each is first seen on
  const checked = spec.parameters.map(() => new Map<SearchSpace.Value, number>())
  const refused = spec.parameters.map(() => false)
  let costRefused = false
  let metricRefused = false
  let curveRefused = false
  csv.rows.forEach((row, r) => {
    if (!filters.every(([i, v]) => matches(row[i]!, v))) return
    const line = csv.lines[r]!
    const values = paramCols.map((i, k): SearchSpace.Value => {
      const c = cell(row[i]!)
      // a list of numbers (hidden sizes, `[64, 64]`) is a category, named by its JSON (`[64,64]`, however spaced)
      const v = Array.isArray(c) ? JSON.stringify(c) : asValue(c)
      if (v === undefined) {
        throw new Error(`line ${line}: column "${spec.parameters[k]!.column}" has no value (backend.parameters[${k}]): ` +
          `every run needs a value of each parameter; fill the cell, or delete the row`)
      }
      if (!checked[k]!.has(v)) checked[k]!.set(v, line)
      else return v
      const comma = typeof v === "string" ? numeric(v) : undefined
      if (!refused[k] && typeof comma === "object" && comma.fixed !== undefined) {
        issues.push(notA(line, spec.parameters[k]!.column, String(v), "a number", `backend.parameters[${k}]`, comma.problem))
        refused[k] = true
      }
      if (spec.check !== undefined && !refused[k]) {
        const issue = spec.check(k, v, line)
        if (issue !== undefined) {
          issues.push(issue)
          refused[k] = true
        }
      }
      return v
    })
    // mixture weights as SearchSpace.get reads them: normalised over the mixture, rounded
    const total = values.reduce<number>((acc, v, k) => acc + (mixture[k] && typeof v === "number" ? v : 0), 0)
    const normalised = values.map((v, k) => (mixture[k] && typeof v === "number" && total > 0 ? roundWeight(v / total) : v))
    const metrics: Record<string, number> = {}
    csv.header.forEach((h, i) => {
      const c = cell(row[i]!)
      if (typeof c === "number") metrics[h] = c
    })
    // an empty (or NaN) metric is a run that diverged or is missing, a failed trial; any other text is a
    // mistake (a typo would otherwise read as a diverged run)
    const read = numeric(row[metricCol]!)
    const score = typeof read === "number" ? read : undefined
    if (typeof read === "object" && !metricRefused) {
      metricRefused = true
      issues.push(notA(line, csv.header[metricCol]!, row[metricCol]!, "a number", "backend.metric.column", read.problem))
    }
    const costRead = costCol !== undefined ? numeric(row[costCol]!) : undefined
    const cost = "seconds" in spec.cost ? spec.cost.seconds : typeof costRead === "number" ? costRead : undefined
    // an empty cost is a run that diverged (it costs the median below); anything else must be a
    // duration, or every trial would cost nothing and no GPU-hour budget would ever stop a run
    if (costCol !== undefined && costRead !== undefined && !(typeof costRead === "number" && costRead >= 0) && !costRefused) {
      costRefused = true
      issues.push(
        `  line ${line}, column "${csv.header[costCol]}": backend.cost.column must hold each run's cost, a number of 0 or more; ` +
          `got ${typeof costRead === "number" ? costRead : JSON.stringify(row[costCol]!.trim())}. ` +
          (typeof costRead === "object" ? `If it is a cost: ${costRead.problem}. Else name` : "Name") +
          ` a numeric column (its values times backend.cost.scale are simulated seconds), or give every run the same cost ` +
          `with cost: { seconds: N }`
      )
    }
    // an empty (or NaN) curve is a run without one; any other text must be a list of numbers, or a
    // typo would replay as a run that reported nothing (and an early-stopping scheduler never sees it)
    const curve = curveCol !== undefined ? numberList(row[curveCol]!) : undefined
    if (curve !== undefined && "problem" in curve && !curveRefused) {
      curveRefused = true
      issues.push(notA(line, csv.header[curveCol!]!, row[curveCol!]!, "a curve", "backend.curve.column", curve.problem))
    }
    const status = statusCol !== undefined ? row[statusCol]!.trim() : ""
    drafts.push({
      id: idCol !== undefined ? row[idCol]! : `line ${line}`,
      line,
      values: normalised,
      score: typeof score === "number" ? score : undefined,
      seconds: typeof cost === "number" ? cost * scale : undefined,
      metrics,
      curve: Array.isArray(curve) ? curve : [],
      ...(typeof score === "number" ? {} : {
        failure: `the recorded run has no ${spec.metric.column}${status !== "" ? ` (status: ${status})` : ""}`
      })
    })
  })
  // a column of numbers with a stray text among them: a number gone wrong, not a categorical value
  // (a typed path has refused it already; a free-form one, training.extra.*, would take it as a category)
  spec.parameters.forEach((p, k) => {
    if (refused[k]) return
    const values = [...checked[k]!.keys()]
    const stray = values.find(numberLike)
    if (stray === undefined || !values.some((v) => typeof v === "number")) return
    issues.push(notA(checked[k]!.get(stray)!, p.column, stray, "a number, though the column's other values are", `backend.parameters[${k}]`,
      "correct the cell, or delete the row"))
  })
  if (issues.length > 0) throw new TableIssues(issues)
  if (drafts.length === 0) {
    // which filter found nothing, and what its column holds
    const holds = filters.flatMap(([i, v]) => {
      if (csv.rows.some((row) => matches(row[i]!, v))) return []
      const seen = distinct(csv.rows.flatMap((row) => {
        const c = asValue(cell(row[i]!))
        return c === undefined ? [] : [c]
      }))
      return [`column "${csv.header[i]}" holds ${seen.slice(0, 10).map((x) => JSON.stringify(x)).join(", ")}${seen.length > 10 ? ", ..." : ""}`]
    })
    throw new Error(`no rows match the filter ${JSON.stringify(spec.filter)}${holds.length > 0 ? `: ${holds.join("; ")}` : ""}`)
  }
  if (!drafts.some((d) => d.score !== undefined)) throw new Error(`no row has a numeric ${spec.metric.column}`)
  // a run without a recorded cost (a diverged run) still took time: the pool's median
  const fallback = median(drafts.flatMap((d) => (d.seconds !== undefined ? [d.seconds] : [])))
  const points: Array<Point> = drafts.map(({ line: _, ...d }) => ({ ...d, seconds: Math.max(0, d.seconds ?? fallback) }))
  const parameters = spec.parameters.map((p, k) => ({ ...p, values: distinct(points.map((pt) => pt.values[k]!)) }))
  return {
    landscape: {
      name: spec.name,
      parameters,
      metric: spec.metric,
      ...(spec.curve !== undefined ? { curve: { name: spec.curve.name, split: spec.curve.split, reduce: spec.curve.reduce } } : {}),
      points
    },
    warnings: repeats(drafts, spec)
  }
}

/**
 * Rows that repeat an earlier row's configuration with another metric: the first recorded run stands
 * for a configuration (repeats usually differ by noise), so the others are never returned. One
 * warning for the table: how many, and the first example.
 */
const repeats = (
  drafts: ReadonlyArray<{ readonly values: ReadonlyArray<SearchSpace.Value>; readonly score: number | undefined; readonly line: number }>,
  spec: TableSpec
): ReadonlyArray<string> => {
  const first = new Map<string, (typeof drafts)[number]>()
  let count = 0
  let example: string | undefined
  for (const d of drafts) {
    const key = JSON.stringify(d.values)
    const f = first.get(key)
    if (f === undefined) first.set(key, d)
    else if (f.score !== d.score) {
      count++
      example ??= `line ${d.line} repeats line ${f.line} (${spec.parameters.map((p, k) => `${p.column}=${d.values[k]}`).join(", ")}) ` +
        `with ${spec.metric.column} ${shown(d.score)}, line ${f.line} has ${shown(f.score)}`
    }
  }
  if (count === 0) return []
  return [
    `${count} row${count === 1 ? "" : "s"} repeat${count === 1 ? "s" : ""} the configuration of an earlier row with a different ` +
      `${spec.metric.column}; the first recorded run stands for a configuration, so a trial never returns a repeat ` +
      `(e.g. ${example}). Keep one row per configuration (say, their mean) to choose what a trial returns`
  ]
}

/** What a synthetic landscape is made of. */
export interface SyntheticSpec {
  readonly name: string
  readonly parameters: ReadonlyArray<SearchSpace.Parameter>
  readonly seed: number
  /** Standard deviation of the noise added to each point (the landscape itself is fixed). */
  readonly noise: number
  readonly seconds: number
  /** Pareto shape for heavy-tailed run costs (scale `seconds`, truncated at 100x); undefined: every run costs `seconds`. */
  readonly heavyTail?: number
  /** Curve points per run (0 for none). */
  readonly curvePoints: number
  readonly direction: Task.Direction
}

const gaussian = (rand: () => number): number => {
  const u = Math.max(rand(), 1e-12)
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand())
}

/**
 * A full grid over the parameters, scored by a smooth function: each parameter has a hidden
 * optimum position and weight, and neighbouring parameters interact; plus seeded noise.
 * Scores lie roughly in [0, 1] (larger is better when maximising; mirrored when minimising).
 */
export const synthetic = (spec: SyntheticSpec): Landscape => {
  const rand = prng(spec.seed)
  const dims = spec.parameters.map((p) => p.values.length)
  const size = dims.reduce((a, b) => a * b, 1)
  if (size > 200_000) throw new Error(`a synthetic landscape of ${size} points is too large (at most 200000)`)
  const optimum = dims.map(() => rand())
  const weight = dims.map(() => 0.5 + rand())
  const totalWeight = weight.reduce((a, b) => a + b, 0)
  const points: Array<Point> = []
  const idx = dims.map(() => 0)
  for (let n = 0; n < size; n++) {
    const x = idx.map((i, k) => (dims[k]! === 1 ? 0.5 : i / (dims[k]! - 1)))
    let loss = 0
    for (let k = 0; k < x.length; k++) {
      const d = x[k]! - optimum[k]!
      loss += weight[k]! * d * d
      if (k > 0) loss += 0.3 * (x[k]! - optimum[k]!) * (x[k - 1]! - optimum[k - 1]!)
    }
    const quality = 1 - loss / totalWeight + spec.noise * gaussian(rand)
    const score = spec.direction === "maximize" ? quality : 1 - quality
    const curve = Array.from({ length: spec.curvePoints }, (_, j) => {
      const f = (j + 1) / spec.curvePoints
      const q = quality * (1 - Math.exp(-4 * f)) / (1 - Math.exp(-4))
      return spec.direction === "maximize" ? q : 1 - q
    })
    const values = idx.map((i, k) => spec.parameters[k]!.values[i]!)
    const metrics: Record<string, number> = { score }
    // Pareto, truncated at 100x its scale so one run cannot outlast the whole search
    const seconds = spec.heavyTail === undefined ? spec.seconds : Math.min(100 * spec.seconds, spec.seconds / Math.pow(Math.max(rand(), 1e-9), 1 / spec.heavyTail))
    points.push({ id: `point-${n}`, values, score, seconds, metrics, curve })
    for (let k = idx.length - 1; k >= 0; k--) {
      idx[k]!++
      if (idx[k]! < dims[k]!) break
      idx[k] = 0
    }
  }
  const parameters = spec.parameters.map((p) => ({ column: p.path, path: p.path, kind: p.kind, values: p.values }))
  return {
    name: spec.name,
    parameters,
    metric: { column: "score", direction: spec.direction },
    ...(spec.curvePoints > 0 ? { curve: { name: "score", split: "dev", reduce: "none" as const } } : {}),
    points
  }
}
