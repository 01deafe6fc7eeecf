/**
 * Pure parts of the Slurm backend: the batch script, the parsing of
 * `--parsable2` output and the mapping of Slurm job states onto TREX job events.
 */
import type { Backend, Result } from "@trex/core"
import { shellJoin, shellQuote } from "./shell.ts"

export { isEnvName, isSafeRelativePath, renderEnvFile, shellJoin, shellQuote } from "./shell.ts"

/** How GPUs are requested: `--gres=gpu:N` (every Slurm) or `--gpus=N` (cons_tres). */
export type GpuFlag = "gres" | "gpus"

/** Everything the batch script needs. */
export interface ScriptInput {
  readonly jobName: string
  readonly labels: Backend.Labels
  readonly jobDir: string
  readonly envFile: string
  readonly argv: ReadonlyArray<string>
  readonly gpus: number
  readonly gpuFlag: GpuFlag
  readonly gresType?: string | undefined
  readonly cpus: number
  readonly memoryMb?: number | undefined
  readonly timeLimitSeconds?: number | undefined
  readonly partition?: string | undefined
  readonly account?: string | undefined
  readonly qos?: string | undefined
  readonly extraDirectives: ReadonlyArray<string>
}

/** The file names the backend uses inside a job directory. */
export const STDOUT_FILE = "slurm.stdout.log"
export const STDERR_FILE = "slurm.stderr.log"
export const ENV_FILE = ".trex-env"
export const SCRIPT_FILE = "trex-job.sbatch"
/** Written before the watch cancels a job Slurm would never start: why (a later watch reads the cancel as that failure). */
export const NEVER_FILE = ".trex-never-starts"

/**
 * Why Slurm will never start a job that is pending for `reason` (squeue's job reason codes) as it
 * is, and what to look at; `undefined` for a reason that passes by itself (`Resources`,
 * `Priority`, nodes down or reserved). With `EnforcePartLimits=NO` (Slurm's default) sbatch takes
 * a job over its partition's limits and keeps it pending: `sbatch --test-only` even says when it
 * would start.
 */
export const neverStarts = (reason: string | undefined): string | undefined => {
  const r = reason?.trim() ?? ""
  if (r === "PartitionTimeLimit") return "its time limit is over its partition's MaxTime: lower recipe.resources.timeLimitSeconds, or name another partition (backend.slurm.partition)"
  if (r === "BadConstraints") return "no node meets its constraints (backend.slurm.extraDirectives, gpuType)"
  if (r === "InvalidAccount") return "it may not use its account (backend.slurm.account)"
  if (r === "InvalidQOS") return "it may not use its QOS (backend.slurm.qos)"
  if (/^(QOS|Assoc)\w*PerJob\w*$/.test(r)) return "it asks for more than one job may have under its QOS or association: lower recipe.resources, or name another QOS (backend.slurm.qos)"
  return undefined
}

/** The comment that carries a job's labels: `trex:run=<run>,node=<node>` (URI-encoded values). */
export const labelComment = (labels: Backend.Labels): string =>
  `trex:run=${encodeURIComponent(labels.run)},node=${encodeURIComponent(labels.node)}`

/** Read labels back from a comment; `undefined` for a job that TREX did not submit. */
export const parseLabelComment = (comment: string): Backend.Labels | undefined => {
  const m = /^trex:run=([^,]*),node=([^,]*)$/.exec(comment.trim())
  if (m === null) return undefined
  try {
    return { run: decodeURIComponent(m[1]!), node: decodeURIComponent(m[2]!) }
  } catch {
    return undefined
  }
}

/**
 * A time as Slurm shows it (`MaxTime=1-02:00:00`, `01:30:00`, `30:00`, `90`: minutes) in seconds;
 * `undefined` for `UNLIMITED` / `INFINITE` or what is none of these.
 */
export const parseSlurmTime = (text: string): number | undefined => {
  const t = text.trim()
  let m: RegExpExecArray | null
  if ((m = /^(?:(\d+)-)?(\d+):(\d+):(\d+)$/.exec(t)) !== null) return ((Number(m[1] ?? 0) * 24 + Number(m[2])) * 60 + Number(m[3])) * 60 + Number(m[4])
  if ((m = /^(\d+)-(\d+)$/.exec(t)) !== null) return (Number(m[1]) * 24 + Number(m[2])) * 3600
  if ((m = /^(\d+):(\d+)$/.exec(t)) !== null) return Number(m[1]) * 60 + Number(m[2])
  if (/^\d+$/.test(t)) return Number(t) * 60
  return undefined
}

/** Slurm's `--time` in `D-HH:MM:SS`, rounded up to whole seconds (Slurm itself rounds up to minutes). */
export const formatTimeLimit = (seconds: number): string => {
  const total = Math.max(1, Math.ceil(seconds))
  const d = Math.floor(total / 86400)
  const h = Math.floor((total % 86400) / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${d}-${pad(h)}:${pad(m)}:${pad(s)}`
}

/** A job name Slurm accepts in an `#SBATCH` line: no whitespace, no quotes, at most 128 characters. */
export const sanitizeJobName = (name: string): string => {
  const clean = name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 128)
  return clean.length > 0 ? clean : "trex-job"
}

const directiveValue = (what: string, value: string): string => {
  if (!/^[A-Za-z0-9_@+=:,./-]+$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot go into an #SBATCH line`)
  return value
}

/**
 * Render the batch script. Labels travel in `--comment`; secrets and env only in the 0600
 * env file that the script sources, never on a command line; argv is shell-quoted.
 */
export const renderScript = (input: ScriptInput): string => {
  const d: Array<string> = [
    `--job-name=${sanitizeJobName(input.jobName)}`,
    `--comment=${labelComment(input.labels)}`,
    `--output=${directiveValue("job directory", `${input.jobDir}/${STDOUT_FILE}`)}`,
    `--error=${directiveValue("job directory", `${input.jobDir}/${STDERR_FILE}`)}`,
    `--cpus-per-task=${Math.max(1, Math.ceil(input.cpus))}`,
    "--nodes=1",
    "--ntasks=1",
    "--requeue"
  ]
  if (input.gpus > 0) {
    const type = input.gresType !== undefined ? `${directiveValue("gres type", input.gresType)}:` : ""
    d.push(input.gpuFlag === "gres" ? `--gres=gpu:${type}${input.gpus}` : `--gpus=${type}${input.gpus}`)
  }
  if (input.memoryMb !== undefined) d.push(`--mem=${Math.ceil(input.memoryMb)}M`)
  if (input.timeLimitSeconds !== undefined) d.push(`--time=${formatTimeLimit(input.timeLimitSeconds)}`)
  if (input.partition !== undefined) d.push(`--partition=${directiveValue("partition", input.partition)}`)
  if (input.account !== undefined) d.push(`--account=${directiveValue("account", input.account)}`)
  if (input.qos !== undefined) d.push(`--qos=${directiveValue("qos", input.qos)}`)
  for (const extra of input.extraDirectives) d.push(directiveValue("extra directive", extra))
  return [
    "#!/bin/sh",
    ...d.map((x) => `#SBATCH ${x}`),
    `# submitted by TREX for run ${JSON.stringify(input.labels.run)}, node ${JSON.stringify(input.labels.node)}`,
    `cd ${shellQuote(input.jobDir)} || exit 97`,
    `TREX_JOB_DIR=${shellQuote(input.jobDir)}`,
    "export TREX_JOB_DIR",
    `. ${shellQuote(input.envFile)} || exit 98`,
    `exec ${shellJoin(input.argv)}`,
    ""
  ].join("\n")
}

/** Parse `--parsable2` output (with a header line) into records keyed by column name. */
export const parseParsable2 = (text: string): Array<Record<string, string>> => {
  const lines = text.split("\n").filter((l) => l.length > 0)
  if (lines.length === 0) return []
  const header = lines[0]!.split("|")
  return lines.slice(1).map((line) => {
    const cells = line.split("|")
    const rec: Record<string, string> = {}
    header.forEach((h, i) => (rec[h] = cells[i] ?? ""))
    return rec
  })
}

/** Slurm's `ExitCode` column `N:S`: exit status and the signal that ended the job. */
export const parseExitCode = (text: string | undefined): { readonly exitCode?: number; readonly signal?: number } => {
  const m = /^(\d+):(\d+)$/.exec((text ?? "").trim())
  if (m === null) return {}
  return { exitCode: Number(m[1]), signal: Number(m[2]) }
}

/** GPUs counted in an `AllocTRES` column (`gres/gpu=2` or `gres/gpu:a100=2`). */
export const gpusFromTres = (tres: string | undefined): number | undefined => {
  let found: number | undefined
  for (const part of (tres ?? "").split(",")) {
    const m = /^gres\/gpu(?::[^=]+)?=(\d+)$/.exec(part.trim())
    if (m !== null) found = Math.max(found ?? 0, Number(m[1]))
  }
  return found
}

/** The normalised state word: `CANCELLED by 0` -> `CANCELLED`, `COMPLETED+` -> `COMPLETED`. */
export const stateWord = (state: string): string => (state.trim().split(/\s+/)[0] ?? "").replace(/\+$/, "").toUpperCase()

/** What a Slurm state means for TREX. */
export type Mapped =
  | { readonly _tag: "Pending"; readonly reason?: string }
  | { readonly _tag: "Running" }
  | { readonly _tag: "Requeue"; readonly reason: string }
  | {
    readonly _tag: "Exit"
    readonly outcome: "Succeeded" | "Failed" | "Cancelled"
    readonly failureKind?: Result.FailureKind
    readonly exitCode?: number
    readonly signal?: number
    readonly message: string
  }

/** Input of {@link mapState}: the job's state, its pending reason, its `ExitCode`, and how often it was requeued. */
export interface StateInput {
  readonly state: string
  readonly reason?: string | undefined
  readonly exitCode?: string | undefined
  readonly requeues: number
  readonly maxRequeues: number
}

const PENDING = new Set(["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED"])
const RUNNING = new Set(["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"])
const INFRA = new Set(["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"])

/**
 * Map a Slurm job state onto a TREX event. Every state in `man squeue` (JOB STATE CODES) is
 * covered: waiting ones become Pending (with the scheduler's reason), live ones Running,
 * and terminal ones an Exit with a failure kind; NODE_FAIL, PREEMPTED and BOOT_FAIL are
 * requeued up to `maxRequeues` times and then fail as Infra.
 */
export const mapState = (input: StateInput): Mapped => {
  const word = stateWord(input.state)
  const code = parseExitCode(input.exitCode)
  const exit = code.exitCode !== undefined ? { exitCode: code.exitCode } : {}
  const signal = code.signal !== undefined && code.signal > 0 ? { signal: code.signal } : {}
  const reason = input.reason !== undefined && input.reason !== "" && input.reason !== "None" ? input.reason : undefined
  if (PENDING.has(word)) {
    const r = word === "PENDING" ? reason : reason !== undefined ? `${word}: ${reason}` : word
    return r !== undefined ? { _tag: "Pending", reason: r } : { _tag: "Pending" }
  }
  if (RUNNING.has(word)) return { _tag: "Running" }
  switch (word) {
    case "COMPLETED":
      return { _tag: "Exit", outcome: "Succeeded", exitCode: code.exitCode ?? 0, message: "completed" }
    case "FAILED":
    case "SPECIAL_EXIT":
      // 137: the job protocol's out-of-memory code (a trainer that caught CUDA out of memory)
      if (code.exitCode === 137 && signal.signal === undefined) {
        return { _tag: "Exit", outcome: "Failed", failureKind: "OOM", ...exit, message: "job exited with code 137: out of memory (the job's own report)" }
      }
      return {
        _tag: "Exit",
        outcome: "Failed",
        failureKind: "Crash",
        ...exit,
        ...signal,
        message: signal.signal !== undefined
          ? `job killed by signal ${signal.signal}`
          : `job exited with code ${code.exitCode ?? "unknown"}${word === "SPECIAL_EXIT" ? " (special exit)" : ""}`
      }
    case "TIMEOUT":
    case "DEADLINE":
      return { _tag: "Exit", outcome: "Failed", failureKind: "Timeout", ...exit, message: word === "TIMEOUT" ? "job reached its time limit" : "job missed its deadline" }
    case "OUT_OF_MEMORY":
      return { _tag: "Exit", outcome: "Failed", failureKind: "OOM", ...exit, message: "job ran out of memory" }
    case "CANCELLED":
      return { _tag: "Exit", outcome: "Cancelled", failureKind: "Cancelled", ...exit, message: input.state.trim().toLowerCase() }
    case "REVOKED":
      return { _tag: "Exit", outcome: "Failed", failureKind: "Infra", message: "job revoked (federation: it started on another cluster)" }
  }
  if (INFRA.has(word)) {
    return input.requeues < input.maxRequeues
      ? { _tag: "Requeue", reason: word }
      : { _tag: "Exit", outcome: "Failed", failureKind: "Infra", message: `${word} after ${input.requeues} requeue(s)` }
  }
  return { _tag: "Pending", reason: `Slurm state ${input.state.trim()}` }
}
