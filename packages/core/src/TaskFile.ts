/**
 * Load a task file (JSON or YAML). Errors name the file, the path of every bad field and
 * what was expected, so the CLI can print them and exit 2.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import { InvalidInput } from "./Errors.ts"
import * as SearchSpace from "./SearchSpace.ts"
import * as Strategy from "./Strategy.ts"
import * as Task from "./Task.ts"

/** A loaded task and the directory its relative paths are resolved against. @since 0.1.0 @category models */
export interface Loaded {
  readonly task: Task.Task
  readonly file: string
  readonly dir: string
}

/**
 * Format a schema error as one issue per line: `budget.maxTrials: Expected a value greater than 0`.
 * With the AST of the schema that refused the input, an unknown key also gets the fix: the key it
 * most likely misspells (`budget.maxTrails: Expected no excess property; did you mean "maxTrials"?`),
 * else the keys accepted there.
 * @since 0.1.0 @category utilities
 */
export const formatIssues = (error: unknown, ast?: SchemaAST.AST): string =>
  ast === undefined ? issueLines(error) : withSuggestions(issueLines(error), ast)

const issueLines = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  const lines = text.split("\n")
  const out: Array<string> = []
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const at = lines[i + 1]?.trim()
    if (at !== undefined && at.startsWith("at [")) {
      const p = at.slice(3).replace(/\["([^"]*)"\]/g, ".$1").replace(/\[(\d+)\]/g, "[$1]").replace(/^\./, "")
      out.push(`  ${p}: ${line.trim()}`)
      i++
    } else if (line.trim().length > 0) {
      out.push(`  ${line.trim()}`)
    }
  }
  return out.join("\n")
}

/**
 * Decode unknown data as a task.
 * @since 0.1.0 @category decoding
 */
export const decode = (input: unknown, source = "task"): Effect.Effect<Task.Task, InvalidInput> =>
  Schema.decodeUnknownEffect(Task.Task)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => new InvalidInput({ source, message: `invalid task in ${source}:\n${formatIssues(e, Task.Task.ast)}` })),
    Effect.tap((task) => {
      const issues = taskIssues(task)
      return issues.length === 0 ? Effect.void : Effect.fail(new InvalidInput({ source, message: `invalid task in ${source}:\n${issues.join("\n")}` }))
    })
  )

/** The ASTs a path segment leads to from `ast` (through unions, suspensions, records and arrays). */
const step = (ast: SchemaAST.AST, segment: string): Array<SchemaAST.AST> => {
  switch (ast._tag) {
    case "Suspend":
      return step(ast.thunk(), segment)
    case "Union":
      return ast.types.flatMap((t) => step(t, segment))
    case "Objects": {
      const prop = ast.propertySignatures.find((p) => p.name === segment)
      if (prop !== undefined) return [prop.type]
      return ast.indexSignatures.map((i) => i.type)
    }
    case "Arrays":
      return /^\d+$/.test(segment) ? [...ast.elements, ...ast.rest] : []
    default:
      return []
  }
}

/** The keys the structs at `path` of `ast` accept. */
const keysAt = (ast: SchemaAST.AST, path: ReadonlyArray<string>): Array<string> => {
  let here = [ast]
  for (const segment of path) here = here.flatMap((a) => step(a, segment))
  const keys = new Set<string>()
  const collect = (a: SchemaAST.AST): void => {
    if (a._tag === "Suspend") collect(a.thunk())
    else if (a._tag === "Union") a.types.forEach(collect)
    else if (a._tag === "Objects") for (const p of a.propertySignatures) if (typeof p.name === "string") keys.add(p.name)
  }
  here.forEach(collect)
  return [...keys]
}

const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/**
 * The candidate that `key` most likely misspells (letter case aside): the nearest by edits, if
 * within a third of the key's length (and at least `least` edits); `undefined` when none is near.
 * @since 0.1.0 @category utilities
 */
export const closest = (key: string, candidates: ReadonlyArray<string>, least = 2): string | undefined => {
  let best: { readonly k: string; readonly d: number } | undefined
  for (const k of candidates) {
    const d = editDistance(key, k)
    if (best === undefined || d < best.d) best = { k, d }
  }
  return best !== undefined && best.d <= Math.max(least, Math.floor(key.length / 3)) ? best.k : undefined
}

/**
 * Each unknown key gets the fix: the accepted key it most likely misspells (`budget.maxTrails:
 * Expected no excess property; did you mean "maxTrials"?`), else the keys accepted there.
 */
const withSuggestions = (issues: string, ast: SchemaAST.AST): string =>
  issues.replace(/^( {2}([^:\n]+): Expected no excess property)$/gm, (line, _all: string, where: string) => {
    const path = where.replace(/\[(\d+)\]/g, ".$1").split(".").filter((s) => s.length > 0)
    const key = path.pop()
    if (key === undefined) return line
    const keys = keysAt(ast, path)
    if (keys.length === 0) return line
    const best = closest(key, keys)
    return best !== undefined ? `${line}; did you mean "${best}"?` : `${line}; the keys allowed here: ${keys.join(", ")}`
  })

/**
 * What the schema cannot see, one line per issue, path first: each needs more than one field
 * (a point against the parameters, a path against the others, a command against the placeholders).
 * Checked here, at load, and not in the schemas: the journal of a run stores its task, and a
 * journal written before a check existed must still open.
 */
const taskIssues = (task: Task.Task): Array<string> => {
  const space = task.searchSpace
  const shape = space === undefined ? [] : spaceShapeIssues(space)
  const defaults = space === undefined || task.defaultStrategy === undefined || shape.length > 0 ? [] : defaultStrategyIssues(space, task.defaultStrategy)
  return [...shape, ...defaults, ...searchSpaceIssues(task), ...recipeIssues(task.recipe), ...budgetIssues(task)]
}

/** A parameter's values as a message shows them: all of a short list, else its first and last few and how many. */
const showValues = (values: ReadonlyArray<unknown>): string =>
  values.length <= 12 ? showAll(values) : `[${[...values.slice(0, 5), "...", ...values.slice(-2)].map((v) => v === "..." ? v : show(v)).join(", ")}] (${values.length} values)`

/**
 * Where a task's default strategy lies outside its search space, one issue per line, path first,
 * each with the values allowed and the fix: the baseline runs as written, and the trials that start
 * from it keep such a value until a move changes it, so the search would run outside the space it
 * declares (on a recorded table, replaying the nearest rows). A parameter the default leaves unset
 * is not judged (the recipe's default runs). `names` words the space's values and pool (default: the
 * task file's `searchSpace`) and, as `otherwise`, the fix besides changing the default where the
 * space cannot take its values (a recorded table's; default: add them to the space).
 * @since 0.1.0 @category validation
 */
export const defaultStrategyIssues = (
  space: SearchSpace.SearchSpace,
  strategy: Strategy.Strategy,
  names: {
    readonly values: (index: number) => string
    readonly points: string
    readonly otherwise?: string
  } = { values: (i) => `searchSpace.parameters[${i}].values`, points: "searchSpace.points" }
): Array<string> => {
  const { offPool, values } = SearchSpace.outside(space, strategy)
  const why = "the baseline would run it as written, and the trials that start from it keep it until a move changes it"
  const issues = values.map(({ index, value }) => {
    const p = space.parameters[index]!
    const allowed = `${names.values(index)} ${showValues(p.values)}`
    const add = `, ${names.otherwise ?? `or add ${show(value)} to them`}`
    if (p.path.startsWith("data.mixture.")) {
      const source = p.path.slice("data.mixture.".length)
      return `  defaultStrategy.data.sources: ${source}'s share of the mixture (${p.path}: its weight over the sum of the weights) is ${show(value)}, ` +
        `not one of ${allowed}: ${why}. Set the weights so that it is one of them${add}`
    }
    return `  defaultStrategy.${p.path}: ${show(value)} is not one of ${allowed}: ${why}. Set it to one of them${add}`
  })
  if (offPool) {
    const held = SearchSpace.normalize(space, strategy, strategy)
    const set = space.parameters.flatMap((p) => {
      const v = SearchSpace.get(held, p.path)
      return v === undefined ? [] : [`${p.path} ${show(v)}`]
    })
    issues.push(`  defaultStrategy: (${set.join(", ")}) is not one of ${names.points}, the configurations the search runs: ` +
      `the baseline would run outside them. Set it to one of them, ${names.otherwise ?? "or add it to them"}`)
  }
  return issues
}

/** A strict budget holds each trial at its time limit's worth: without a time limit, it has nothing to hold. */
const budgetIssues = (task: Task.Task): Array<string> => {
  const issue = Task.strictWithoutLimit(task)
  return issue === undefined ? [] : [`  budget.strict: ${issue}`]
}

const show = (value: unknown): string => JSON.stringify(value)
const showAll = (values: ReadonlyArray<unknown>): string => `[${values.map(show).join(", ")}]`
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`

/** Issues about the points of a table beyond this many are counted, not listed. */
const maxPointIssues = 10

/**
 * The parameters: at least one, each path once, mixture weights in [0, 1] (SearchSpace.set clamps
 * them silently). The points: when given, at least one, each a value per parameter (one of that
 * parameter's values, compared as SearchSpace compares them), each listed once.
 */
const spaceShapeIssues = (space: SearchSpace.SearchSpace): Array<string> => {
  const { parameters, points } = space
  if (parameters.length === 0) {
    return ["  searchSpace.parameters: is empty: list at least one parameter to vary, or leave searchSpace out"]
  }
  const issues: Array<string> = []
  const firstOf = new Map<string, number>()
  parameters.forEach((p, i) => {
    const first = firstOf.get(p.path)
    if (first === undefined) firstOf.set(p.path, i)
    else issues.push(`  searchSpace.parameters[${i}].path: ${p.path} is already parameters[${first}]'s path: list each path once, with all its values`)
    p.values.forEach((v, j) => {
      const k = p.values.indexOf(v)
      if (k < j) issues.push(`  searchSpace.parameters[${i}].values[${j}]: ${show(v)} is already values[${k}]: list each value once`)
    })
    if (!p.path.startsWith("data.mixture.")) return
    p.values.forEach((v, j) => {
      const what = typeof v !== "number" ? "is not a number" : v < 0 ? "is a negative weight" : v > 1 ? "is more than 1" : undefined
      if (what !== undefined) {
        issues.push(`  searchSpace.parameters[${i}].values[${j}]: ${show(v)} ${what} for ${p.path}: a mixture weight is the source's share of the data, from 0 to 1`)
      }
    })
  })
  if (points === undefined) return issues
  if (points.length === 0) {
    issues.push("  searchSpace.points: is empty: list at least one point, or leave points out to search every combination of the parameters' values")
    return issues
  }
  const pointIssues: Array<string> = []
  const seen = new Map<string, number>()
  const paths = parameters.map((p) => p.path).join(", ")
  points.forEach((point, k) => {
    if (point.length !== parameters.length) {
      pointIssues.push(`  searchSpace.points[${k}]: has ${plural(point.length, "value")} for ${plural(parameters.length, "parameter")} (${paths}): ` +
        "give one value per parameter, in the order of searchSpace.parameters")
    }
    let valid = point.length === parameters.length
    point.forEach((v, i) => {
      const p = parameters[i]
      if (p === undefined || p.values.includes(v)) return
      valid = false
      pointIssues.push(`  searchSpace.points[${k}][${i}]: ${show(v)} is not one of ${p.path}'s values ${showAll(p.values)}`)
    })
    if (!valid) return
    // JSON tells values apart as `includes` does: 8 from "8", and not 0 from -0
    const key = JSON.stringify(point)
    const first = seen.get(key)
    if (first === undefined) seen.set(key, k)
    else pointIssues.push(`  searchSpace.points[${k}]: ${key} is already points[${first}]: list each point once`)
  })
  issues.push(...pointIssues.slice(0, maxPointIssues))
  if (pointIssues.length > maxPointIssues) issues.push(`  searchSpace.points: ${pointIssues.length - maxPointIssues} more issues like these`)
  return issues
}

/** The placeholders the executors substitute, in recipe.command and recipe.env values. */
const placeholders: ReadonlyArray<string> = Task.PLACEHOLDERS
const placeholderList = `${placeholders.slice(0, -1).map((p) => `{${p}}`).join(", ")} or {${placeholders.at(-1)}}`
// `${NAME}` is left alone: it is a shell's variable, in a `sh -c` script; `{{name}}` is a literal `{name}` in an f-string
const placeholderLike = /(?<![$\{])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})/g
const spacedPlaceholder = /(?<!\$)\{(?:\s+([A-Za-z_][A-Za-z0-9_]*)\s*|([A-Za-z_][A-Za-z0-9_]*)\s+)\}/g

/**
 * The placeholder `key` most likely misspells, if it is one: the same letters in another case
 * (`{taskdir}`, `{Node}`); a typo of a long one (`{taskDri}`, `{exec_path}`: short ones, `{run}` and
 * `{node}`, are a letter away from words such as `{fun}` and `{mode}`); or a placeholder's name, or
 * its first word, in camelCase with Id, Dir, Directory or Path added (`{runId}`, `{taskDirectory}`).
 * Snake-case names (`{run_id}`) and plurals (`{nodes}`) pass: Python code names its variables so.
 */
const stems = new Map(placeholders.flatMap((p) => [[p, p], [p.split(/(?=[A-Z])/)[0]!, p]] as const))
const camelSuffixed = new RegExp(`^(${[...stems.keys()].join("|")})(?:Id|Dir|Directory|Path)$`)
const misspelt = (key: string): string | undefined =>
  placeholders.find((p) => p.toLowerCase() === key.toLowerCase()) ??
    closest(key, placeholders.filter((p) => p.length >= 7), 1) ??
    stems.get(camelSuffixed.exec(key)?.[1] ?? "")

/**
 * A `{name}` in the command or an env value that misspells one of the four placeholders
 * (`{taskdir}`, `{runId}`; see {@link misspelt}) would reach every job as it is, and every trial would fail the same way.
 * Any other `{word}` is left alone: it may be meant literally (a Python f-string in `python -c`, say).
 */
const recipeIssues = (recipe: Task.Recipe | undefined): Array<string> => {
  const issues: Array<string> = []
  const check = (text: string, where: string) => {
    for (const [, key] of text.matchAll(placeholderLike)) {
      if (key === undefined || placeholders.includes(key)) continue
      const best = misspelt(key)
      if (best === undefined) continue
      issues.push(`  ${where}: {${key}} is not a placeholder; did you mean {${best}}? (the placeholders: ${placeholderList})`)
    }
    // a placeholder with spaces inside its braces is passed as it is
    for (const m of text.matchAll(spacedPlaceholder)) {
      const key = m[1] ?? m[2]
      if (key !== undefined && placeholders.includes(key)) issues.push(`  ${where}: ${m[0]} is not substituted: write {${key}}, without spaces`)
    }
  }
  recipe?.command.forEach((part, i) => check(part, `recipe.command[${i}]`))
  for (const [name, value] of Object.entries(recipe?.env ?? {})) check(value, `recipe.env.${name}`)
  // a secret's value comes from trex's environment: one also in env would be in the task file (and its journal) as well
  const seen = new Set<string>()
  recipe?.secretEnv?.forEach((name, i) => {
    if (name in (recipe.env ?? {})) {
      issues.push(`  recipe.secretEnv[${i}]: ${name} is in recipe.env too: a secret's value comes from trex's environment, not the task file; take it out of recipe.env`)
    } else if (seen.has(name)) issues.push(`  recipe.secretEnv[${i}]: ${name} is named twice: name it once`)
    else if (name.startsWith("TREX_")) issues.push(`  recipe.secretEnv[${i}]: ${name}: TREX_* variables are trex's own (TREX_JOB_DIR, ...): give the secret another name`)
    seen.add(name)
  })
  return issues
}

const decodeStrict = Schema.decodeUnknownSync(Strategy.Strategy)

/**
 * Each search-space parameter must make valid strategies: its value set on the default strategy
 * decodes (so a path that names no field of a strategy, `training.epoch` for `training.epochs`, is an
 * error instead of a parameter the jobs never see, and so is a value of the wrong type).
 */
const searchSpaceIssues = (task: Task.Task): Array<string> => {
  const base = task.defaultStrategy
  if (task.searchSpace === undefined || base === undefined) return []
  const issues: Array<string> = []
  task.searchSpace.parameters.forEach((p, i) => {
    for (const value of p.values) {
      const why = valueIssues(base, p.path, value)
      if (why === undefined) continue
      issues.push(`  searchSpace.parameters[${i}].path: ${p.path} = ${JSON.stringify(value)} does not make a valid strategy (${PATH_HINT}):\n` +
        why.replace(/^ {2}/gm, "    "))
      break
    }
  })
  return issues
}

/**
 * What a path names, for messages about a parameter path that names no field of a strategy.
 * @since 0.1.0 @category utilities
 */
export const PATH_HINT = "a path names a field of data, training or evaluation; free-form settings go under data.extra or training.extra"

/**
 * Why `value` set at `path` on `base` does not make a valid strategy, one issue per line as
 * {@link formatIssues} writes them (an unknown key with the key it likely misspells); `undefined`
 * when it does. The check a search-space parameter's values (and a recorded table's cells) pass.
 * @since 0.1.0 @category validation
 */
export const valueIssues = (base: Strategy.Strategy, path: string, value: SearchSpace.Value): string | undefined => {
  try {
    decodeStrict(SearchSpace.set(base, path, value), { errors: "all", onExcessProperty: "error" })
    return undefined
  } catch (e) {
    return formatIssues(e, Strategy.Strategy.ast)
  }
}

// `yaml` (72 modules) is loaded by the first YAML task file read, not by every program that imports this module
// (`trex --help` and `trex status` read none); required, not imported, so that parse and load stay synchronous
// (under Node, `yaml` is CommonJS for both)
let yamlParse: ((text: string) => unknown) | undefined
const parseYaml = (text: string): unknown => (yamlParse ??= (createRequire(import.meta.url)("yaml") as typeof import("yaml")).parse)(text)

/**
 * Parse the text of a task file (YAML when the name ends in .yaml/.yml, else JSON; a file of another name that is
 * no JSON is told how it was read and how task files are named: a YAML task saved as `task.txt`, a README given
 * by mistake).
 * @since 0.1.0 @category decoding
 */
export const parse = (text: string, file: string): Effect.Effect<Task.Task, InvalidInput> => {
  const yaml = /\.ya?ml$/i.test(file)
  const named = yaml || /\.json$/i.test(file)
  return Effect.try({
    try: () => (yaml ? parseYaml(text) : JSON.parse(text)) as unknown,
    catch: (e) =>
      new InvalidInput({
        source: file,
        message: `${file} is not valid ${yaml ? "YAML" : "JSON"}: ${(e as Error).message.split("\n")[0]}` +
          (named ? "" : "; a file whose name ends neither in .yaml, .yml nor .json is read as JSON: a task file is YAML named *.yaml (or *.yml) or JSON named *.json")
      })
  }).pipe(Effect.flatMap((data) => decode(data, file)))
}

/**
 * The most a task file is read of: a task is a few kB of YAML or JSON, so a file past this (a dataset or
 * a checkpoint named by mistake, or a device such as `/dev/zero`, which never ends) is refused, not read
 * whole into memory.
 */
const MAX_TASK_BYTES = 16 * 1024 * 1024

/** A file's text, read up to {@link MAX_TASK_BYTES}; `undefined` when it holds more. */
const readBounded = (file: string): string | undefined => {
  const fd = fs.openSync(file, "r")
  try {
    const chunks: Array<Buffer> = []
    let total = 0
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024)
      const n = fs.readSync(fd, chunk, 0, chunk.length, null)
      if (n === 0) return Buffer.concat(chunks, total).toString("utf8")
      total += n
      if (total > MAX_TASK_BYTES) return undefined
      chunks.push(chunk.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** What to name instead of a folder given as a task file: the YAML files in it (an example's folder), if any. */
const inFolder = (abs: string, given: string): string => {
  const names = (() => {
    try {
      return fs.readdirSync(abs).filter((n) => /\.ya?ml$/i.test(n) && !n.startsWith(".")).sort()
    } catch {
      return []
    }
  })()
  const shown = names.slice(0, 5).map((n) => path.join(given, n))
  return names.length === 0
    ? "name a task file (YAML or JSON), e.g. examples/quickstart/task.yaml"
    : `name the task file in it: ${shown.join(", ")}${names.length > shown.length ? ", ..." : ""}`
}

/**
 * Read and decode a task file.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { TaskFile } from "@trex/core"
 * const loaded = TaskFile.load("examples/quickstart/task.yaml").pipe(Effect.runPromise)
 * ```
 * @since 0.1.0 @category loading
 */
export const load = (file: string): Effect.Effect<Loaded, InvalidInput> =>
  Effect.gen(function*() {
    const abs = path.resolve(file)
    const text = yield* Effect.try({
      try: () => readBounded(abs),
      catch: (e) =>
        new InvalidInput({
          source: file,
          message: (e as NodeJS.ErrnoException).code === "ENOENT"
            ? `task file ${file} does not exist`
            : (e as NodeJS.ErrnoException).code === "EISDIR"
            ? `task file ${file} is a folder: ${inFolder(abs, file)}`
            : `cannot read task file ${file}: ${(e as Error).message}`
        })
    })
    if (text === undefined) {
      const size = fs.statSync(abs, { throwIfNoEntry: false })
      const what = size?.isFile() === true ? `${(size.size / 1024 / 1024).toFixed(0)} MB` : "more than 16 MB (a device or pipe that did not end there)"
      return yield* new InvalidInput({
        source: file,
        message: `task file ${file} is ${what}: a task file is a few kB of YAML or JSON (16 MB at most); name the task file (e.g. task.yaml), not a dataset or a checkpoint`
      })
    }
    const task = yield* parse(text, file)
    return { task, file: abs, dir: path.dirname(abs) }
  })
