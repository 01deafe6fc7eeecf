/**
 * The files of a local job directory and how to read them: `job.spec.json` (what to run, written by
 * the backend), `pid` and `exit.json` (written by the supervisor), the logs, `metrics.jsonl` and
 * `result.json` (written by the job). Plain synchronous `node:fs`: the files are small, or read in
 * bounded chunks.
 */
import { Backend, JobProtocol } from "@trex/core"
import * as Fs from "node:fs"
import * as Path from "node:path"

export const SPEC_FILE = "job.spec.json"
export const PID_FILE = "pid"
export const EXIT_FILE = "exit.json"
export const STDOUT_FILE = "stdout.log"
export const STDERR_FILE = "stderr.log"
export const SUPERVISOR_LOG = "supervisor.log"
/** Files the backend owns: a job's `files` may not overwrite them. */
export const CONTROL_FILES: ReadonlySet<string> = new Set([SPEC_FILE, PID_FILE, EXIT_FILE, STDOUT_FILE, STDERR_FILE, SUPERVISOR_LOG])

/** `job.spec.json`: what the supervisor runs. Secret env values are never written, only their names. */
export interface SpecFile {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  readonly labels: Backend.Labels
  readonly resources: Backend.JobSpec["resources"]
  readonly env: Readonly<Record<string, string>>
  readonly gpuIds: ReadonlyArray<string>
  readonly killGraceMs: number
  readonly submittedAt: number
}

/** `pid`: the job's process (also its group id) and its supervisor, with start times against pid reuse. */
export interface PidFile {
  readonly pid: number
  readonly procStart: string | null
  readonly supervisorPid: number
  readonly supervisorProcStart: string | null
  readonly startedAt: number
  readonly labels: Backend.Labels
  readonly gpuIds: ReadonlyArray<string>
}

/** Why a job ended, when it was not simply its process exiting on its own. */
export type ExitReason = "cancel" | "timeout" | "spawn-error" | "abandoned" | "lost"

/** `exit.json`. */
export interface ExitFile {
  readonly code: number | null
  readonly signal: string | null
  readonly startedAt: number
  readonly endedAt: number
  readonly reason?: ExitReason
  readonly message?: string
}

const readJson = (file: string): unknown => {
  try {
    return JSON.parse(Fs.readFileSync(file, "utf8"))
  } catch {
    return undefined
  }
}

export const readSpec = (dir: string) => readJson(Path.join(dir, SPEC_FILE)) as SpecFile | undefined
export const readPid = (dir: string) => readJson(Path.join(dir, PID_FILE)) as PidFile | undefined
export const readExit = (dir: string) => readJson(Path.join(dir, EXIT_FILE)) as ExitFile | undefined

export const writeJsonAtomic = (file: string, value: unknown): void => {
  const tmp = `${file}.${process.pid}.tmp`
  Fs.writeFileSync(tmp, JSON.stringify(value, null, 2))
  Fs.renameSync(tmp, file)
}

/**
 * Record an exit unless the supervisor already did (first writer wins: a hard link to a file written
 * whole is atomic, and fails when `exit.json` exists). A write that fails (a full disk) leaves no
 * `exit.json` behind, never an empty one that no reader could parse.
 */
export const writeExitOnce = (dir: string, exit: ExitFile): void => {
  const tmp = Path.join(dir, `.${EXIT_FILE}.${process.pid}.once.tmp`)
  try {
    Fs.writeFileSync(tmp, JSON.stringify(exit))
    Fs.linkSync(tmp, Path.join(dir, EXIT_FILE))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
  } finally {
    Fs.rmSync(tmp, { force: true })
  }
}

/**
 * Whether `pid` is the same living process that was recorded: `start` is its start time in clock
 * ticks since boot (`/proc/<pid>/stat` field 22, recorded by the supervisor) and tells a reused
 * pid apart. Zombies count as dead.
 */
export const isAlive = (pid: number, start: string | null): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
  let stat: string
  try {
    stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return true // no procfs (macOS): the signal check is all we have
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  if (fields[0] === "Z" || fields[0] === "X") return false
  return start === null || fields[19] === start
}

/** Whether any process of a job is still running: its supervisor or its process group. */
export const isRunning = (pid: PidFile): boolean =>
  isAlive(pid.supervisorPid, pid.supervisorProcStart) || isAlive(pid.pid, pid.procStart)

/** Send a signal to a process (or, with `-pgid`, to a process group) that may be gone already. */
export const signal = (target: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(target, sig)
  } catch {
    // gone already
  }
}

/**
 * At most this many bytes of a log are read per call: a job that printed gigabytes (or a reattach
 * that reads a long log from its start) is read a bounded slice at a time, never held whole.
 */
export const READ_CHUNK = 4 << 20

/** Reads the lines a growing file gained since the last call, at most {@link READ_CHUNK} bytes a call. */
export class FileLines {
  private offset = 0
  /** Whether the last `read` stopped before the end of the file (the caller reads again at once). */
  behind = false
  private readonly splitter = new JobProtocol.LineSplitter()
  private readonly file: string
  private readonly chunk: number
  constructor(file: string, chunk = READ_CHUNK) {
    this.file = file
    this.chunk = chunk
  }
  read(): Array<string> {
    this.behind = false
    let fd: number
    try {
      fd = Fs.openSync(this.file, "r")
    } catch {
      return []
    }
    const lines: Array<string> = []
    try {
      const size = Fs.fstatSync(fd).size
      if (size <= this.offset) return lines
      const buf = Buffer.allocUnsafe(Math.min(size - this.offset, this.chunk))
      let got = 0
      while (got < buf.length) {
        const n = Fs.readSync(fd, buf, got, buf.length - got, this.offset + got)
        if (n === 0) break
        got += n
      }
      this.offset += got
      this.behind = this.offset < size
      for (const line of this.splitter.push(buf.subarray(0, got))) lines.push(line)
    } finally {
      Fs.closeSync(fd)
    }
    return lines
  }
  /** The last lines, once the file is complete: call until `behind` is false. */
  end(): Array<string> {
    const lines = this.read()
    return this.behind ? lines : [...lines, ...this.splitter.end()]
  }
}

/** A tail line longer than this keeps its end (where an enormous line stopped). */
const TAIL_LINE = 2_000

const lastLines = (file: string, n: number): Array<string> => {
  try {
    const fd = Fs.openSync(file, "r")
    try {
      const size = Fs.fstatSync(fd).size
      const len = Math.min(size, 64 * 1024)
      const buf = Buffer.alloc(len)
      Fs.readSync(fd, buf, 0, len, size - len)
      const lines = buf.toString("utf8").split("\n")
      if (lines.at(-1) === "") lines.pop()
      // the first line is probably cut: dropped, unless it is the only one (a progress bar rewritten
      // with \r for hours, an enormous line), whose end is what the job said last
      if (len < size && lines.length > 1) lines.shift()
      return lines.slice(-n).map((l) => {
        const shown = JobProtocol.shownLine(l)
        return shown.length > TAIL_LINE ? `…${shown.slice(-TAIL_LINE)}` : shown
      })
    } finally {
      Fs.closeSync(fd)
    }
  } catch {
    return []
  }
}

/** The last lines of stdout then stderr (stderr last: it usually says why a job failed). */
const logTail = (dir: string, n = 40): Array<string> =>
  [...lastLines(Path.join(dir, STDOUT_FILE), n), ...lastLines(Path.join(dir, STDERR_FILE), n)].slice(-n)

const readResult = (dir: string): { readonly result: unknown } | { readonly resultError: string } => {
  const file = Path.join(dir, JobProtocol.RESULT_FILE)
  try {
    const size = Fs.statSync(file).size
    return JobProtocol.parseResultBytes(size > JobProtocol.MAX_RESULT_BYTES ? "" : Fs.readFileSync(file), size)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT"
      ? JobProtocol.parseResultBytes(undefined)
      : { resultError: `cannot read ${JobProtocol.RESULT_FILE}: ${(e as Error).message}` }
  }
}

const outcome = (exit: ExitFile, limit: number | undefined, wroteResult: boolean): Pick<Backend.JobExit, "outcome" | "failureKind" | "message"> => {
  switch (exit.reason) {
    case "cancel":
      // a job that finished its work in the grace period after the cancel (exit 0, its result
      // written) succeeded: its result is kept, not thrown away and run again
      if (exit.code === 0 && exit.signal === null && wroteResult) return { outcome: "Succeeded" }
      return { outcome: "Cancelled", message: "cancelled" }
    case "timeout":
      return { outcome: "Failed", failureKind: "Timeout", message: `exceeded its time limit of ${limit ?? "?"}s` }
    case "spawn-error":
      return { outcome: "Failed", failureKind: "Crash", message: exit.message ?? "could not start" }
    case "abandoned":
      return { outcome: "Failed", failureKind: "Infra", message: "the controller stopped before the job started" }
    case "lost":
      return { outcome: "Failed", failureKind: "Infra", message: "the job's supervisor died without recording an exit" }
  }
  if (exit.code === 0) return { outcome: "Succeeded" }
  if (exit.signal === "SIGKILL" || exit.code === 137) {
    return { outcome: "Failed", failureKind: "OOM", message: "killed by SIGKILL (out of memory?)" }
  }
  return {
    outcome: "Failed",
    failureKind: "Crash",
    message: exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`
  }
}

/** Less room than this left where a job ran: its disk counts as full. */
const FULL_BYTES = 1 << 20

/**
 * `the disk holding <dir> was full (N KB free)` when it is (where a job's output, its log included,
 * cannot be written), else `undefined`.
 */
export const diskFull = (dir: string): string | undefined => {
  try {
    const fs = Fs.statfsSync(dir)
    const free = fs.bavail * fs.bsize
    return free < FULL_BYTES ? `the disk holding ${dir} was full (${Math.round(free / 1024)} KB free)` : undefined
  } catch {
    return undefined
  }
}

/** The {@link Backend.JobExit} of a finished job, from its directory. */
export const toJobExit = (dir: string, exit: ExitFile): Backend.JobExit => {
  const spec = readSpec(dir)
  const wallSeconds = Math.max(0, (exit.endedAt - exit.startedAt) / 1000)
  const result = readResult(dir)
  const ended = outcome(exit, spec?.resources.timeLimitSeconds, "result" in result)
  return Backend.noSpaceExit({
    _tag: "Exit",
    ...ended,
    ...(exit.code !== null ? { exitCode: exit.code } : {}),
    ...(exit.signal !== null ? { signal: exit.signal } : {}),
    ...result,
    logTail: logTail(dir),
    wallSeconds,
    gpuSeconds: wallSeconds * (spec?.gpuIds.length ?? 0)
  }, ended.failureKind === "Crash" ? diskFull(dir) : undefined)
}
