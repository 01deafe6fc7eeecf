/**
 * A trial's job log kept by the controller: the lines its backend streams (secrets taken out by the
 * caller), in `<dir>/trex-job.log`, for backends whose own logs are elsewhere (a pod's, a container's,
 * a remote host's) or go (a Job's pod after its TTL, a removed container).
 *
 * Each new watch of a job may stream its log from the first line again (a backend's watch after a
 * lost connection, a resumed controller's): a watch writes the file afresh when there is none, else a
 * `.next` beside it, which replaces it when the job ends, if it holds at least as much (a watch that
 * found the backend's log gone keeps what was written before). Writing is best effort: a disk that
 * refuses it is said once and never fails the trial.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** The file's name in a trial's folder. */
export const FILE = "trex-job.log"

export interface JobLog {
  /** A new watch of the job begins. */
  readonly start: () => void
  /** Lines the watch streamed, in order. */
  readonly write: (lines: ReadonlyArray<string>) => void
  /** The job ended: a `.next` written by this watch replaces the file if it holds at least as much. */
  readonly end: () => void
  /** Why the log is no longer kept, once (then `undefined`). */
  readonly takeWarning: () => string | undefined
}

const size = (file: string) => {
  try {
    return fs.statSync(file).size
  } catch {
    return -1
  }
}

/**
 * The job log of one trial, in `dir` (made when first written). With `fresh`, each watch writes the
 * file anew (a code agent's trial: its last training job's log is the trial's).
 */
export const make = (dir: string, options: { readonly fresh?: boolean } = {}): JobLog => {
  const main = path.join(dir, FILE)
  const next = `${main}.next`
  let target: string | undefined
  let failed = false
  let warning: string | undefined
  const attempt = (what: string, f: () => void) => {
    if (failed) return
    try {
      f()
    } catch (e) {
      failed = true
      warning = `the job's log is no longer kept in ${main} (${what}: ${e instanceof Error ? e.message : String(e)})`
    }
  }
  return {
    start: () =>
      attempt("start", () => {
        fs.mkdirSync(dir, { recursive: true })
        target = options.fresh !== true && size(main) > 0 ? next : main
        fs.writeFileSync(target, "")
      }),
    write: (lines) => {
      if (lines.length === 0 || target === undefined) return
      const file = target
      attempt("write", () => fs.appendFileSync(file, `${lines.join("\n")}\n`))
    },
    takeWarning: () => {
      const w = warning
      warning = undefined
      return w
    },
    end: () => {
      if (target !== next) return
      target = undefined
      attempt("end", () => {
        if (size(next) >= size(main)) fs.renameSync(next, main)
        else fs.rmSync(next, { force: true })
      })
    }
  }
}
