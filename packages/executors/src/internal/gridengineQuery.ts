/**
 * Asking Grid Engine about jobs: `qstat -xml` while the qmaster holds a job, `qstat -j` for why it
 * waits or failed, `qacct -j` (the accounting file) once it has ended. Commands go through a
 * {@link CommandRunner}, with `SGE_ROOT`/`SGE_CELL` set through `env` when configured (a login
 * shell over SSH often sets neither).
 */
import { Errors } from "@trex/core"
import { Effect } from "effect"
import type { CommandRunner, CommandOutput } from "./commandRunner.ts"
import * as Script from "./gridengineScript.ts"

const NAME = "gridengine"

const fail = (operation: string, message: string, retryable = true) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

/** Where the Grid Engine clients find their cell. */
export interface Cell {
  readonly sgeRoot?: string | undefined
  readonly sgeCell?: string | undefined
}

/** Grid Engine's commands, run through a runner with the cell's environment. */
export interface Client {
  readonly exec: (command: string, args: ReadonlyArray<string>) => Effect.Effect<CommandOutput, Errors.BackendError>
  /** Run a command and fail, naming it and its stderr, when it exits non-zero. */
  readonly run: (command: string, args: ReadonlyArray<string>) => Effect.Effect<string, Errors.BackendError>
}

/** A client for `runner`, with `SGE_ROOT`/`SGE_CELL` from `cell` (through `env`) when given. */
export const client = (runner: CommandRunner, cell: Cell): Client => {
  const vars = [
    ...(cell.sgeRoot !== undefined ? [`SGE_ROOT=${cell.sgeRoot}`] : []),
    ...(cell.sgeCell !== undefined || cell.sgeRoot !== undefined ? [`SGE_CELL=${cell.sgeCell ?? "default"}`] : [])
  ]
  const exec = (command: string, args: ReadonlyArray<string>) =>
    vars.length > 0 ? runner.exec("env", [...vars, command, ...args]) : runner.exec(command, args)
  return {
    exec,
    run: (command, args) =>
      exec(command, args).pipe(
        Effect.flatMap((o) =>
          o.code === 0
            ? Effect.succeed(o.stdout)
            : Effect.fail(fail(command, `${command} ${args.join(" ")} exited ${o.code}: ${(o.stderr.trim() || o.stdout.trim()).split("\n").slice(-3).join(" ")}`))
        )
      )
  }
}

/**
 * Whether an error says the qmaster did not answer (stopped, restarting, failing over, out of
 * reach): the jobs keep running under their execution daemons meanwhile, so this is a wait, not a
 * job's end.
 */
export const isQmasterUnreachable = (e: Errors.BackendError): boolean =>
  // (an act_qmaster of zero length: a qmaster starting, which writes its host name there, read before it had)
  /unable to (contact|send message to) qmaster|got select error|Connection refused|failed receiving gdi request|can't unpack gdi request|unable to read qmaster name: .*has zero length/i.test(e.message) &&
  // a host the qmaster refuses (not a submit host, a name it resolves otherwise) is a setting to fix, not an outage
  !/access denied|denied: host/i.test(e.message)

/**
 * Whether a `qsub` failed before its request reached the qmaster: nothing was submitted, so
 * submitting again cannot make a second job. (One that timed out waiting for the answer may have
 * been submitted, and is not retried.)
 */
export const isConnectFailure = (e: Errors.BackendError): boolean =>
  /unable to (contact|send message to) qmaster|Connection refused|got select error/i.test(e.message) && !/receiv|timeout/i.test(e.message)

/** The caller's jobs that the qmaster holds (`qstat -xml`: running and waiting), by id. */
export const qstat = (ge: Client) => Effect.map(ge.run("qstat", ["-xml"]), Script.parseQstat)

/** Why a job waits or failed (`qstat -j <id>`); `undefined` once the qmaster has forgotten it. */
export const details = (ge: Client, id: string) =>
  Effect.map(ge.exec("qstat", ["-j", id]), (o) => (o.code === 0 ? Script.parseJobDetails(o.stdout) : undefined))

/** Context variables of the jobs `ids` (`qstat -j <ids> -xml`). */
export const contexts = (ge: Client, ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.succeed(new Map<string, Record<string, string>>())
    : Effect.map(ge.run("qstat", ["-j", ids.join(","), "-xml"]), Script.parseContexts)

/**
 * The job's accounting record (`qacct -j <id>`), the latest with its name; `undefined` when the
 * accounting file has none (yet: the qmaster writes it every `accounting_flush_time`).
 */
export const qacct = (ge: Client, id: string, name: string | undefined) =>
  Effect.map(ge.exec("qacct", ["-j", id]), (o) => {
    if (o.code !== 0) return { record: undefined, why: (o.stderr.trim() || o.stdout.trim()).split("\n").at(-1) ?? "" }
    return { record: Script.pickRecord(Script.parseQacct(o.stdout), name), why: "" }
  })
