/**
 * Reading a Slurm job's state: `squeue` while the controller holds the job, `sacct`
 * (accounting) for its exit code, run time and GPUs (with `scontrol` for the exact exit code of a
 * failed job: sacct reports codes above 127 modulo 128), and `slurmrestd` instead of `squeue`
 * when a REST endpoint is configured.
 */
import { Effect, Redacted } from "effect"
import { Errors } from "@trex/core"
import type { CommandRunner } from "./commandRunner.ts"
import { gpusFromTres, parseParsable2, stateWord } from "./slurmScript.ts"

/** What one poll learnt about a job. */
export interface Status {
  readonly state: string
  readonly reason?: string | undefined
  readonly exitCode?: string | undefined
  readonly elapsedSeconds?: number | undefined
  readonly gpus?: number | undefined
}

/** A slurmrestd endpoint: `url` like `http://127.0.0.1:6820`, a JWT for `user`. */
export interface RestOptions {
  readonly url: string
  readonly user: string
  readonly token: Redacted.Redacted<string>
  /** The OpenAPI version in the path (default `v0.0.38`, Slurm 22.05). */
  readonly version?: string | undefined
}

const fail = (operation: string, message: string, retryable = true) =>
  new Errors.BackendError({ backend: "slurm", operation, message, retryable })

/**
 * Whether an error says Slurm did not answer: slurmctld (or slurmrestd) stopped, restarting or out
 * of reach, or slurmdbd when only accounting knows the job. Jobs keep running under slurmd
 * meanwhile, so this is a wait, not a job's end.
 */
export const isControllerUnreachable = (e: Errors.BackendError): boolean =>
  /Unable to contact slurm controller|Socket timed out on send\/recv|Zero Bytes were transmitted or received|slurmdbd, the accounting, is unreachable|slurmrestd GET job .*(fetch failed|ECONNREFUSED)/i.test(e.message)

/**
 * Whether an `sbatch` failed before it reached the controller (`connect failure`): nothing was
 * submitted, so submitting again cannot make a second job. (A timeout after the request was sent
 * may have submitted it, and is not retried.)
 */
export const isConnectFailure = (e: Errors.BackendError): boolean => /Unable to contact slurm controller \(connect failure\)/i.test(e.message)

/** Run a command and fail with its stderr when it exits non-zero. */
export const run = (runner: CommandRunner, command: string, args: ReadonlyArray<string>) =>
  runner.exec(command, args).pipe(
    Effect.flatMap((o) =>
      o.code === 0 ? Effect.succeed(o.stdout) : Effect.fail(fail(command, `${command} ${args.join(" ")} exited ${o.code}: ${o.stderr.trim()}`))
    )
  )

/** The job as `squeue` sees it; `undefined` once the controller has forgotten it. */
export const squeue = (runner: CommandRunner, id: string): Effect.Effect<Status | undefined, Errors.BackendError> =>
  runner.exec("squeue", ["-h", "-t", "all", "-j", id, "-o", "%T|%r"]).pipe(
    Effect.flatMap((o) => {
      const line = o.stdout.split("\n").find((l) => l.includes("|"))
      if (line !== undefined) {
        const [state, reason] = line.split("|")
        return Effect.succeed<Status | undefined>({ state: state!, reason })
      }
      if (o.code === 0 || /invalid job id/i.test(o.stderr)) return Effect.succeed(undefined)
      return Effect.fail(fail("squeue", `squeue -j ${id} exited ${o.code}: ${o.stderr.trim()}`))
    })
  )

/**
 * The job's accounting record; `undefined` when accounting has none (yet) or is not enabled. Fails
 * (retryable) when slurmdbd does not answer, which is not the same as having no record.
 */
export const sacct = (runner: CommandRunner, id: string): Effect.Effect<Status | undefined, Errors.BackendError> =>
  runner.exec("sacct", ["-X", "-n", "-P", "-j", id, "-o", "JobID,State,Reason,ExitCode,ElapsedRaw,AllocTRES"]).pipe(
    Effect.flatMap((o) => {
      if (o.code !== 0) {
        return /Problem talking to the database|persistent connection/i.test(o.stderr)
          ? Effect.fail(fail("sacct", `sacct -j ${id} exited ${o.code}: ${o.stderr.trim().split("\n").at(-1)} (slurmdbd, the accounting, is unreachable)`))
          : Effect.succeed(undefined)
      }
      const rec = parseParsable2(`JobID|State|Reason|ExitCode|ElapsedRaw|AllocTRES\n${o.stdout}`).find((r) => r.JobID === id)
      if (rec === undefined) return Effect.succeed(undefined)
      const elapsed = Number(rec.ElapsedRaw)
      return Effect.succeed<Status | undefined>({
        state: rec.State!,
        reason: rec.Reason,
        exitCode: rec.ExitCode,
        elapsedSeconds: Number.isFinite(elapsed) ? elapsed : undefined,
        gpus: gpusFromTres(rec.AllocTRES)
      })
    })
  )

/** The job as slurmrestd sees it (live state and reason; exit codes come from sacct and, for failed jobs, scontrol). */
export const rest = (options: RestOptions, id: string): Effect.Effect<Status | undefined, Errors.BackendError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const url = `${options.url.replace(/\/$/, "")}/slurm/${options.version ?? "v0.0.38"}/job/${encodeURIComponent(id)}`
      const res = await fetch(url, {
        signal,
        headers: { "X-SLURM-USER-NAME": options.user, "X-SLURM-USER-TOKEN": Redacted.value(options.token) }
      })
      const body = (await res.json().catch(() => ({}))) as {
        jobs?: Array<{ job_state?: string; state_reason?: string }>
        errors?: Array<{ error?: string; description?: string }>
      }
      const job = body.jobs?.[0]
      if (job?.job_state !== undefined) return { state: job.job_state, reason: job.state_reason } satisfies Status
      if (res.status === 404 || (body.errors ?? []).some((e) => /invalid job id/i.test(`${e.error} ${e.description}`))) return undefined
      throw new Error(`HTTP ${res.status}: ${JSON.stringify(body.errors ?? body).slice(0, 300)}`)
    },
    catch: (e) => fail("slurmrestd", `slurmrestd GET job ${id}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** Slurm's `[D-]HH:MM:SS` (or `MM:SS`) as seconds. */
const durationSeconds = (text: string | undefined): number | undefined => {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$/.exec((text ?? "").trim())
  return m === null ? undefined : Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3]) * 60 + Number(m[4])
}

/**
 * What slurmctld holds for a job it still remembers (`scontrol show job`, for `MinJobAge` after the
 * end, 300 s by default): its exact exit code (sacct reports exit codes above 127 modulo 128, 137 as
 * 9, which would hide the job protocol's out-of-memory code), its run time and GPUs (what sacct
 * would give, while slurmdbd does not answer). `undefined` once the controller has forgotten the job.
 */
export const controllerRecord = (
  runner: CommandRunner,
  id: string
): Effect.Effect<{ exitCode?: string; elapsedSeconds?: number; gpus?: number } | undefined, Errors.BackendError> =>
  runner.exec("scontrol", ["show", "job", "-o", id]).pipe(
    Effect.map((o) => {
      if (o.code !== 0) return undefined
      const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(o.stdout)?.[1]
      const exitCode = field("ExitCode")
      const elapsedSeconds = durationSeconds(field("RunTime"))
      const gpus = gpusFromTres(field("TRES"))
      return {
        ...(exitCode !== undefined && /^\d+:\d+$/.test(exitCode) ? { exitCode } : {}),
        ...(elapsedSeconds !== undefined ? { elapsedSeconds } : {}),
        ...(gpus !== undefined ? { gpus } : {})
      }
    })
  )

const TERMINAL = new Set([
  "COMPLETED", "FAILED", "SPECIAL_EXIT", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED"
])

/** Final states after which Slurm puts a `--requeue` job back in the queue. */
const REQUEUED_BY_SLURM = new Set(["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"])

/** Whether a state is final for this instance of the job. */
export const isTerminal = (state: string): boolean => TERMINAL.has(stateWord(state))

/**
 * One poll: the live source first (squeue or REST); once the job is terminal or gone, its
 * accounting record, waited for briefly because slurmdbd records a job a moment after it ends.
 * While slurmdbd does not answer, a job slurmctld still holds is read from `scontrol show job`; one
 * it has forgotten fails the poll (retryable), rather than being taken for a job Slurm never had.
 */
export const poll = (runner: CommandRunner, restOptions: RestOptions | undefined, id: string) =>
  Effect.gen(function*() {
    const live = restOptions !== undefined ? yield* rest(restOptions, id) : yield* squeue(runner, id)
    if (live !== undefined && stateWord(live.state) === "COMPLETING") {
      // The job's processes have ended and slurmctld has its exit; COMPLETING lasts until the node's
      // slurmd reports the clean-up, which a slurmd that died (a node going down) never does. A final
      // exit in accounting is the job's end; a node failure or a preemption is left to Slurm's requeue.
      const acct = yield* Effect.orElseSucceed(sacct(runner, id), () => undefined)
      if (acct === undefined || !isTerminal(acct.state) || REQUEUED_BY_SLURM.has(stateWord(acct.state))) return live
      const held = yield* controllerRecord(runner, id)
      return held?.exitCode !== undefined ? { ...acct, exitCode: held.exitCode } : acct
    }
    if (live !== undefined && !isTerminal(live.state)) return live
    const fromController = (status: Status) =>
      Effect.map(controllerRecord(runner, id), (held): Status => (held !== undefined ? { ...status, ...held } : status))
    for (let i = 0; i < 20; i++) {
      const acct = live === undefined ? yield* sacct(runner, id) : yield* Effect.orElseSucceed(sacct(runner, id), () => "unreachable" as const)
      if (acct === "unreachable") return yield* fromController(live!)
      if (acct !== undefined && (live === undefined || isTerminal(acct.state))) {
        const word = stateWord(acct.state)
        if (word !== "FAILED" && word !== "SPECIAL_EXIT") return acct
        const held = yield* controllerRecord(runner, id)
        return held?.exitCode !== undefined ? { ...acct, exitCode: held.exitCode } : acct
      }
      if (acct === undefined && i >= 4 && live !== undefined) return yield* fromController(live)
      yield* Effect.sleep("250 millis")
    }
    // Accounting lags (it still has the job running, e.g. just after slurmdbd came back): the controller's record.
    return live !== undefined ? yield* fromController(live) : live
  })
