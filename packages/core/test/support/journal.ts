/** Helpers for the journal tests: deterministic events and a child process running `journal-child.ts`. */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cost from "../../src/Cost.ts"
import * as JournalEvent from "../../src/JournalEvent.ts"

/** The `i`-th event of a test journal (sizes vary so rows span different page fills). */
export const eventAt = (i: number): JournalEvent.JournalEvent =>
  JournalEvent.make("BudgetCharged", {
    nodeId: `n${i}`,
    cost: Cost.make({ inputTokens: i, dollars: i / 100 }),
    reason: `event ${i} ${"x".repeat((i * 37) % 300)}`,
    at: i
  })

export const repoRoot = path.resolve(new URL("../../../..", import.meta.url).pathname)
/** Node 24 (the machine's `node` may be older). */
export const nodeBin = path.join(repoRoot, "node_modules/.bin/node")
const childScript = new URL("./journal-child.ts", import.meta.url).pathname

const created: Array<string> = []

/** A fresh temporary directory, removed by {@link removeTempDirs}. */
export const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-journal-"))
  created.push(dir)
  return dir
}

/** Remove every directory {@link tempDir} made (call it in `afterAll`). */
export const removeTempDirs = (): void => {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

/** A running child with its stdout lines. */
export interface Child {
  readonly proc: ChildProcess
  readonly lines: Array<string>
  /** Resolves when a line satisfying `pred` has been printed (rejects if the child exits first). */
  readonly waitFor: (pred: (line: string) => boolean) => Promise<string>
  /** Resolves with the exit code or signal when the child exits. */
  readonly exited: Promise<number | string>
}

/** How a child runs in a pid namespace of its own: as in a container (`/proc` its namespace's), or seeing its parent's `/proc`. */
export type PidNamespace = true | "sees its parent's /proc"

/** `unshare` running a command as process 1 of a pid namespace of its own (see {@link PidNamespace}). */
export const unsharePid = (how: PidNamespace): ReadonlyArray<string> =>
  ["unshare", "--pid", "--fork", ...(how === true ? ["--mount-proc"] : []), "--kill-child"]

/**
 * `journal-child.ts` with `args`, started; with `hostname`, on a machine of that name (its own UTS namespace,
 * which needs root: any string, an empty one or one with spaces too, as a machine can name itself); with
 * `pidNamespace`, as process 1 of a pid namespace of its own, as in a container (needs root too): the child's
 * `proc` is then `unshare`'s, which kills it when killed (its pid here: {@link innerPid}); with `prefix`, under that
 * command (`nsenter --target <pid> --pid --`: in that process's pid namespace, seeing this `/proc`).
 */
export const startChild = (
  args: ReadonlyArray<string>,
  options: { readonly hostname?: string; readonly pidNamespace?: PidNamespace; readonly prefix?: ReadonlyArray<string> } = {}
): Child => {
  const node = [...(options.prefix ?? []), nodeBin, "--conditions=@trex/source", "--no-warnings", childScript, ...args]
  const inNamespace = options.pidNamespace !== undefined ? [...unsharePid(options.pidNamespace), ...node] : node
  // (unshare and sh exec: the pid is the child's, unless in a pid namespace of its own)
  const [command, ...argv] = options.hostname === undefined
    ? inNamespace
    : ["unshare", "--uts", "sh", "-c", `printf '%s\n' "$1" > /proc/sys/kernel/hostname && shift && exec "$@"`, "sh", options.hostname, ...inNamespace]
  const proc = spawn(command!, argv, {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  const waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }> = []
  let stderr = ""
  let buf = ""
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
    buf += d
    const parts = buf.split("\n")
    buf = parts.pop()!
    for (const line of parts) {
      lines.push(line)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.pred(line)) waiters.splice(i, 1)[0]!.resolve(line)
      }
    }
  })
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d))
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => {
      for (const w of waiters.splice(0)) w.reject(new Error(`child ${args.join(" ")} exited (${code ?? signal}) first:\n${stderr}`))
      resolve(code ?? signal ?? -1)
    })
  )
  return {
    proc,
    lines,
    exited,
    waitFor: (pred) => {
      const seen = lines.find(pred)
      if (seen !== undefined) return Promise.resolve(seen)
      if (proc.exitCode !== null || proc.signalCode !== null) return Promise.reject(new Error(`child exited:\n${stderr}`))
      return new Promise((resolve, reject) => waiters.push({ pred, resolve, reject }))
    }
  }
}

/** A process's start time in clock ticks since boot, as a lock record has it (`/proc/<pid>/stat` field 22). */
export const startOf = (pid: number): string => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!
}

/** The pid here of the process `unshare --fork` (a child started with `pidNamespace`) runs in its namespace. */
export const innerPid = (pid: number): number => {
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(" ")
  if (children.length !== 1 || children[0] === "") throw new Error(`unshare (process ${pid}) has children ${JSON.stringify(children)}`)
  return Number(children[0])
}

/** Kill children with SIGKILL; resolves once all have exited. */
export const killAll = (...children: ReadonlyArray<Child>): Promise<unknown> =>
  Promise.all(children.map((c) => (c.proc.kill("SIGKILL"), c.exited)))

/** Run a child to completion; its stdout lines. */
export const runChild = async (args: ReadonlyArray<string>): Promise<Array<string>> => {
  const child = startChild(args)
  const code = await child.exited
  if (code !== 0) throw new Error(`child ${args.join(" ")} failed with ${code}`)
  return child.lines
}
