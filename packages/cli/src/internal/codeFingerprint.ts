/**
 * A fingerprint of a task's trainer code, so that results of earlier runs are not reused once the
 * code that produced them has changed: the source files under each folder holding a file (or being
 * a folder) that the recipe command or an env value names through `{taskDir}`, recursively, without dot
 * folders, `node_modules`, `__pycache__`, build directories, run directories (any folder holding a
 * `journal.sqlite`, wherever `--out` put it), files over 1 MB and task files (the one read and any other
 * beside it, such as a variant of it: a budget or search space is not the trainer's code); and the files it
 * names, whatever their extension. Paths are relative to the task folder, so a moved checkout keeps its fingerprint.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Task } from "@trex/core"

const SOURCE = new Set([
  ".ts", ".mts", ".cts", ".js", ".mjs", ".cjs", ".py", ".sh", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt", ".r", ".jl", ".lua", ".rs", ".go", ".c", ".cc", ".cpp", ".h", ".cu"
])
const SKIP = new Set(["node_modules", "__pycache__", "trex-runs", "dist", "build"])
/**
 * Bounds, so a task folder that also holds data does not turn every start into a long read: a file
 * over 1 MB is data, not code (a large JSON or text file), and the walk looks at 20,000 entries at most.
 */
const MAX_FILES = 2_000
const MAX_FILE_BYTES = 1024 * 1024
const MAX_ENTRIES = 20_000

const sourceFiles = (dir: string, out: Array<string>, seen: { entries: number }): void => {
  let names: Array<string>
  try {
    names = fs.readdirSync(dir).sort()
  } catch {
    return
  }
  for (const name of names) {
    if (out.length >= MAX_FILES || ++seen.entries > MAX_ENTRIES) return
    if (name.startsWith(".") || SKIP.has(name)) continue
    const full = path.join(dir, name)
    const stat = fs.statSync(full, { throwIfNoEntry: false })
    if (stat === undefined) continue
    // a run directory (wherever --out put it): its jobs' files are results, not code
    if (stat.isDirectory() && !fs.existsSync(path.join(full, "journal.sqlite"))) sourceFiles(full, out, seen)
    else if (stat.isFile() && stat.size <= MAX_FILE_BYTES && SOURCE.has(path.extname(name).toLowerCase())) out.push(full)
  }
}

/**
 * Whether a file is a task file: YAML or JSON whose top level has the keys every task has (`name`,
 * `objective`, `metric`). Read by its text, so a task file being edited (not yet valid) is one too.
 */
const isTaskFile = (file: string): boolean => {
  const ext = path.extname(file).toLowerCase()
  if (ext !== ".yaml" && ext !== ".yml" && ext !== ".json") return false
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return false
  }
  const keys = ["name", "objective", "metric"]
  if (ext !== ".json") return keys.every((k) => new RegExp(`^${k}\\s*:`, "m").test(text))
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && keys.every((k) => k in value)
  } catch {
    return false
  }
}

/**
 * 16 hex digits, or `undefined` when the recipe names no file of the task folder. `taskFile`: the task
 * file read, left out with every other task file; with `otherTaskFiles`, the others are counted, as runs
 * started before 2026-12-05 counted them (a run records its fingerprint, and resumes against it).
 */
export const codeFingerprint = (task: Task.Task, taskDir: string, taskFile?: string, options: { readonly otherTaskFiles?: boolean } = {}): string | undefined => {
  const recipe = task.recipe
  if (recipe === undefined) return undefined
  const roots = new Set<string>()
  // files named outright count whatever their extension (a script `train` without one)
  const named: Array<string> = []
  for (const part of [...recipe.command, ...Object.values(recipe.env)]) {
    for (const m of part.matchAll(/\{taskDir\}([^\s"'=:,;]*)/g)) {
      const file = path.join(taskDir, m[1] ?? "")
      const stat = fs.statSync(file, { throwIfNoEntry: false })
      if (stat?.isDirectory() === true) roots.add(file)
      else if (stat?.isFile() === true) {
        roots.add(path.dirname(file))
        if (stat.size <= MAX_FILE_BYTES) named.push(file)
      }
    }
  }
  if (roots.size === 0) return undefined
  const files: Array<string> = []
  const seen = { entries: 0 }
  for (const root of [...roots].sort()) sourceFiles(root, files, seen)
  for (const file of named.sort()) if (!files.includes(file)) files.push(file)
  const skip = taskFile !== undefined && taskFile !== "" ? path.resolve(taskFile) : undefined
  const hash = createHash("sha256")
  for (const file of new Set(files)) {
    if (file === skip || (options.otherTaskFiles !== true && isTaskFile(file))) continue
    hash.update(path.relative(taskDir, file)).update("\0").update(fs.readFileSync(file)).update("\0")
  }
  return hash.digest("hex").slice(0, 16)
}

/**
 * The fingerprint a run records as its `code` (what, beside its task, decides whether its results
 * carry over to another run: `ResultCache.identity`): the trainer's ({@link codeFingerprint}) and,
 * for a run on the simulator, the bytes of the recorded table it replays (`backend.table`, relative
 * to the task folder). A table's rows are the results: once it is edited, results read from the old
 * one are not reused, and a simulated run's results are never taken for a real run's, or the other
 * way round (their fingerprints differ). `undefined` when there is neither trainer code nor table.
 */
export const runFingerprint = (task: Task.Task, taskDir: string, taskFile: string | undefined, backend: string): string | undefined => {
  const code = codeFingerprint(task, taskDir, taskFile)
  const table = task.backend?.["table"]
  if (backend !== "simulator" || typeof table !== "string") return code
  let bytes: Buffer
  try {
    bytes = fs.readFileSync(path.resolve(taskDir, table))
  } catch {
    // (a table that cannot be read is refused when the simulator reads it)
    return code
  }
  return createHash("sha256").update("simulator\0").update(code ?? "").update("\0").update(bytes).digest("hex").slice(0, 16)
}
