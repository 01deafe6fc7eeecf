/**
 * Reading a Slurm job's state: `squeue` while the controller holds the job, `sacct`
 * (accounting) for its exit code, run time and GPUs (with `scontrol` for the exact exit code of a
 * failed job: sacct reports codes above 127 modulo 128), and `slurmrestd` instead of `squeue`
 * when a REST endpoint is configured.
 */
import { Effect, Redacted } from "effect"
import { Errors } from "@trex/core"
import type { CommandRunner } from "./slurmRunner.ts"
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

/** The job's accounting record; `undefined` when accounting has none (yet) or is not enabled. */
export const sacct = (runner: CommandRunner, id: string): Effect.Effect<Status | undefined, Errors.BackendError> =>
  runner.exec("sacct", ["-X", "-n", "-P", "-j", id, "-o", "JobID,State,Reason,ExitCode,ElapsedRaw,AllocTRES"]).pipe(
    Effect.map((o) => {
      if (o.code !== 0) return undefined
      const rec = parseParsable2(`JobID|State|Reason|ExitCode|ElapsedRaw|AllocTRES\n${o.stdout}`).find((r) => r.JobID === id)
      if (rec === undefined) return undefined
      const elapsed = Number(rec.ElapsedRaw)
      return {
        state: rec.State!,
        reason: rec.Reason,
        exitCode: rec.ExitCode,
        elapsedSeconds: Number.isFinite(elapsed) ? elapsed : undefined,
        gpus: gpusFromTres(rec.AllocTRES)
      }
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

/**
 * The exit code slurmctld holds for a job it still remembers (`scontrol show job`, for `MinJobAge`
 * after the end, 300 s by default): sacct reports exit codes above 127 modulo 128 (137 as 9), which
 * would hide the job protocol's out-of-memory code. `undefined` once the controller has forgotten the job.
 */
export const controllerExitCode = (runner: CommandRunner, id: string): Effect.Effect<string | undefined, Errors.BackendError> =>
  runner.exec("scontrol", ["show", "job", "-o", id]).pipe(
    Effect.map((o) => (o.code === 0 ? /\bExitCode=(\d+:\d+)/.exec(o.stdout)?.[1] : undefined))
  )

const TERMINAL = new Set([
  "COMPLETED", "FAILED", "SPECIAL_EXIT", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY", "CANCELLED", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED"
])

/** Whether a state is final for this instance of the job. */
export const isTerminal = (state: string): boolean => TERMINAL.has(stateWord(state))

/**
 * One poll: the live source first (squeue or REST); once the job is terminal or gone, its
 * accounting record, waited for briefly because slurmdbd records a job a moment after it ends.
 */
export const poll = (runner: CommandRunner, restOptions: RestOptions | undefined, id: string) =>
  Effect.gen(function*() {
    const live = restOptions !== undefined ? yield* rest(restOptions, id) : yield* squeue(runner, id)
    if (live !== undefined && !isTerminal(live.state)) return live
    for (let i = 0; i < 20; i++) {
      const acct = yield* sacct(runner, id)
      if (acct !== undefined && (live === undefined || isTerminal(acct.state))) {
        const word = stateWord(acct.state)
        if (word !== "FAILED" && word !== "SPECIAL_EXIT") return acct
        const exitCode = yield* controllerExitCode(runner, id)
        return exitCode !== undefined ? { ...acct, exitCode } : acct
      }
      if (acct === undefined && i >= 4 && live !== undefined) return live
      yield* Effect.sleep("250 millis")
    }
    return live
  })
