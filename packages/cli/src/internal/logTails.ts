/**
 * The last lines of each trial's job logs, for the HTML report: read from the end of `stdout.log` and
 * `stderr.log` in the local backend's job directories, as a terminal shows them.
 */
import { JobProtocol, Task } from "@trex/core"
import { Redacted } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** Bytes read from the end of each log. */
const WINDOW = 8192
/** A line longer than this keeps its end (where an enormous line stopped). */
const LINE = 2000

/**
 * The last lines of one log: a line rewritten with `\r` (a tqdm bar) is its last state; the line the
 * window cut is dropped unless it is the only one (a bar rewritten for hours, an enormous line).
 */
const lastLines = (file: string): Array<string> => {
  const size = fs.statSync(file).size
  const fd = fs.openSync(file, "r")
  const buf = Buffer.alloc(Math.min(size, WINDOW))
  try {
    fs.readSync(fd, buf, 0, buf.length, Math.max(0, size - buf.length))
  } finally {
    fs.closeSync(fd)
  }
  const lines = buf.toString("utf8").split("\n")
  if (lines.at(-1) === "") lines.pop()
  if (buf.length < size && lines.length > 1) lines.shift()
  return lines
    .map(JobProtocol.shownLine)
    .filter((l) => l.trim().length > 0 && !l.startsWith("TREX_"))
    .slice(-20)
    .map((l) => (l.length > LINE ? `…${l.slice(-LINE)}` : l))
}

/**
 * The last lines of the logs of each of `ids` that has a job directory under `jobsDir`, with the
 * value of each of `secrets` (`[name, value]`) the lines hold replaced by `<secret NAME>`.
 */
export const read = (jobsDir: string, ids: Iterable<string>, secrets: ReadonlyArray<readonly [string, string]> = []): Record<string, Array<string>> => {
  const tails: Record<string, Array<string>> = {}
  const scrub = (line: string) => secrets.reduce((l, [name, value]) => (l.includes(value) ? l.replaceAll(value, `<secret ${name}>`) : l), line)
  for (const id of ids) {
    const lines: Array<string> = []
    for (const name of ["stdout.log", "stderr.log"]) {
      const file = path.join(jobsDir, id, name)
      if (fs.existsSync(file)) lines.push(...lastLines(file))
    }
    if (lines.length > 0) tails[id] = lines.slice(-30).map(scrub)
  }
  return tails
}

/**
 * The secrets a run's jobs got (its task's `recipe.secretEnv`), as this process's environment has
 * them: what {@link read} takes out of the lines it shows. Longest first, so a value holding another
 * is replaced whole.
 */
export const secretsOf = (task: Task.Task): ReadonlyArray<readonly [string, string]> =>
  Object.entries(Task.secretValues(task.recipe, process.env).values)
    .map(([name, value]) => [name, Redacted.value(value)] as const)
    .sort((a, b) => b[1].length - a[1].length)
