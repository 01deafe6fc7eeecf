/**
 * The code agent's workspace: the files it wrote, kept in memory and handed to every job it
 * runs as `JobSpec.files`, so the same session works on any backend (the job directory is
 * the backend's). Paths stay inside the job directory.
 */
import { JobProtocol } from "@trex/core"

const RESERVED = new Set([JobProtocol.STRATEGY_FILE, JobProtocol.JOB_FILE, JobProtocol.RESULT_FILE, JobProtocol.METRICS_FILE])

/**
 * Names the backends keep for themselves at the top of a job directory: the job's logs and the control files
 * (`.trex-*` and `trex-*`: an SSH job's exit code, a batch script, the env file holding secrets). A file of the
 * agent's under one of them fails the submit on some backends (local, Slurm: the node, not the command) and on
 * others is overwritten by, or overwrites, the backend's own (an SSH command then read `exit code NaN`).
 */
const BACKEND_FILES = new Set([
  "stdout.log", "stderr.log", "pid", "exit.json", "job.spec.json", "supervisor.log", // local
  "slurm.stdout.log", "slurm.stderr.log", "gridengine.stdout.log", "gridengine.stderr.log" // batch schedulers
])
const isBackendFile = (normal: string): boolean =>
  !normal.includes("/") && (BACKEND_FILES.has(normal) || normal.startsWith(".trex") || normal.startsWith("trex-"))

/** Why a path is refused, or `undefined` when it is a fine relative path inside the workspace. */
export const checkPath = (path: string): string | undefined => {
  if (path.length === 0) return "the path is empty"
  if (path.startsWith("/") || path.startsWith("\\") || /^[A-Za-z]:/.test(path)) return `absolute paths are not allowed: ${path}`
  const parts = path.split(/[\\/]+/)
  if (parts.includes("..")) return `paths may not contain "..": ${path}`
  if (parts.some((p) => p.length === 0 && parts.length > 1)) return `malformed path: ${path}`
  return undefined
}

export class Workspace {
  private readonly files = new Map<string, string>()

  write(path: string, content: string): string | undefined {
    const problem = checkPath(path)
    if (problem !== undefined) return problem
    const normal = path.split(/[\\/]+/).filter((p) => p !== ".").join("/")
    if (RESERVED.has(normal)) return `${normal} is written by TREX (or by the job); choose another name`
    if (isBackendFile(normal)) {
      return `${normal} is a name the backends keep for their own files in a job directory (logs, control files); choose another name, or put it in a subdirectory`
    }
    this.files.set(normal, content)
    return undefined
  }

  read(path: string): { readonly content: string } | { readonly problem: string } {
    const problem = checkPath(path)
    if (problem !== undefined) return { problem }
    const normal = path.split(/[\\/]+/).filter((p) => p !== ".").join("/")
    const content = this.files.get(normal)
    return content === undefined
      ? { problem: `no such file in the workspace: ${normal} (files: ${[...this.files.keys()].join(", ") || "none"}); job outputs can be read with run_command` }
      : { content }
  }

  list(): ReadonlyArray<{ readonly path: string; readonly content: string }> {
    return [...this.files].map(([path, content]) => ({ path, content }))
  }
}
