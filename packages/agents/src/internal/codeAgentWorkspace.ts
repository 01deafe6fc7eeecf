/**
 * The code agent's workspace: the files it wrote, kept in memory and handed to every job it
 * runs as `JobSpec.files`, so the same session works on any backend (the job directory is
 * the backend's). Paths stay inside the job directory.
 */
import { JobProtocol } from "@trex/core"

const RESERVED = new Set([JobProtocol.STRATEGY_FILE, JobProtocol.JOB_FILE, JobProtocol.RESULT_FILE, JobProtocol.METRICS_FILE])

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
