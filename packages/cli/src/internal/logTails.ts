/**
 * The last lines of each trial's job logs, for the HTML report: read from the end of `stdout.log` and
 * `stderr.log` in the local backend's job directories, as a terminal shows them.
 */
import { JobProtocol, Secrets, Task } from "@trex/core"
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

/** The logs a local job writes itself: what it printed, secrets included. */
const RAW = ["stdout.log", "stderr.log"]
/** The log the controller keeps of another backend's job, secrets taken out as it was written. */
const KEPT = "trex-job.log"

/**
 * The last lines of the logs of each of `ids` that has a job directory under `jobsDir`, with the
 * value of each of `secrets` (`[name, value]`) the lines hold replaced by `<secret NAME>`: a local
 * job's own `stdout.log` and `stderr.log` (unless `raw` is false), else the `trex-job.log` the
 * controller kept of another backend's job.
 */
export const read = (jobsDir: string, ids: Iterable<string>, secrets: ReadonlyArray<Secrets.Secret> = [], raw = true): Record<string, Array<string>> => {
  const tails: Record<string, Array<string>> = {}
  const scrub = Secrets.scrubber(secrets)
  for (const id of ids) {
    const lines: Array<string> = []
    const files = raw ? RAW.map((name) => path.join(jobsDir, id, name)).filter((f) => fs.existsSync(f)) : []
    if (files.length === 0 && fs.existsSync(path.join(jobsDir, id, KEPT))) files.push(path.join(jobsDir, id, KEPT))
    for (const file of files) lines.push(...lastLines(file))
    if (lines.length > 0) tails[id] = lines.slice(-30).map(scrub)
  }
  return tails
}

/**
 * The secrets a run's jobs got, as this process's environment has them: the values of its task's
 * `recipe.secretEnv`, and of this process's variables named like a secret (which a local job
 * inherits), what {@link read} takes out of the lines it shows (see `Secrets.of`); and `missing`, the
 * names of `recipe.secretEnv` this environment has not set, whose values the lines could hold and
 * nothing here can take out.
 */
const secretsOf = (task: Task.Task): { readonly secrets: ReadonlyArray<Secrets.Secret>; readonly missing: ReadonlyArray<string> } => {
  const { missing, values } = Task.secretValues(task.recipe, process.env)
  return { secrets: Secrets.of(values, process.env), missing }
}

/**
 * The last lines of the logs of each of `ids`, as {@link read} gives them, when this process has
 * every secret of the task's `recipe.secretEnv` to take out of them; else only those of the logs the
 * controller kept (taken out as they were written), and `withheld`: why the jobs' own are not shown,
 * naming the variables to set (a job's own logs hold what it printed, secrets included, and a report
 * is made to be passed on).
 */
export const shown = (jobsDir: string, ids: Iterable<string>, task: Task.Task): { readonly tails: Record<string, Array<string>>; readonly withheld?: string } => {
  const { missing, secrets } = secretsOf(task)
  const all = [...ids]
  if (missing.length === 0) return { tails: read(jobsDir, all, secrets) }
  // (only a local job's own logs can hold a secret: the controller's were taken out of as they were written)
  const raw = all.some((id) => RAW.some((name) => fs.existsSync(path.join(jobsDir, id, name))))
  if (!raw) return { tails: read(jobsDir, all, secrets) }
  const names = missing.join(", ")
  const them = missing.length === 1 ? "it" : "them"
  return {
    // the log the controller kept of another backend's job had them taken out as it was written
    tails: read(jobsDir, all, secrets, false),
    withheld: `lines from the jobs' logs are left out: the task's recipe.secretEnv names ${names}, not set in this shell, and what a job printed of ${
      missing.length === 1 ? "its value" : "their values"
    } could not be taken out; set ${them} as the run had ${them} and ask again (the lines then read <secret NAME> where a value was), or read the logs in the trials' job folders yourself`
  }
}
