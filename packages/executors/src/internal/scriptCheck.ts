/**
 * A batch scheduler's check of a job without running it (`sbatch --test-only`, `qsub -w v`): the
 * job's script written to a file of its own in the work directory, given to the scheduler's command,
 * and removed; and a command given by its full path looked for on the submit host.
 */
import type { Backend, Errors } from "@trex/core"
import { Effect } from "effect"
import type { CommandOutput, CommandRunner } from "./commandRunner.ts"

export interface ScriptCheck {
  readonly runner: CommandRunner
  /** The work directory, and the task-file setting that names it (`backend.slurm.workDir`). */
  readonly workDir: string
  readonly setting: string
  /** The job's script, as its submit would write it. */
  readonly script: string
  /** The scheduler's check of the script in `file`. */
  readonly test: (file: string) => Effect.Effect<CommandOutput, Errors.BackendError>
  /** What a refusal (a non-zero exit) means, and what to look at. */
  readonly refused: (output: CommandOutput) => string
  /** The job's command (`argv[0]`), and where jobs run (`the compute nodes`). */
  readonly command: string
  readonly runsOn: string
}

export const check = (c: ScriptCheck): Effect.Effect<Array<Backend.Concern>, Errors.BackendError> =>
  Effect.gen(function*() {
    const root = c.workDir.replace(/\/$/, "")
    const file = `${root}/.trex-check-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}.sh`
    const made = yield* Effect.result(Effect.andThen(c.runner.mkdirp(c.workDir), c.runner.writeFile(file, c.script, 0o700)))
    if (made._tag === "Failure") return [{ severity: "fail", message: `cannot write a job's files in ${c.setting} (${c.workDir}): ${made.failure.message}` }]
    const concerns: Array<Backend.Concern> = []
    const tested = yield* c.test(file).pipe(Effect.ensuring(Effect.ignore(c.runner.exec("rm", ["-f", file]))))
    if (tested.code !== 0) concerns.push({ severity: "fail", message: c.refused(tested) })
    if (c.command.startsWith("/") && (yield* c.runner.exec("test", ["-x", c.command])).code !== 0) {
      concerns.push({ severity: "warn", message: `the job's command ${c.command} is not an executable file on the submit host (recipe.command[0]); jobs run on ${c.runsOn}, which may see other files` })
    }
    return concerns
  })
