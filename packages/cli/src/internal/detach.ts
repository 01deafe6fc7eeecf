/**
 * `trex run --detach` and `trex resume --detach`: the same command started again as a controller of
 * its own session (no terminal, so a closed terminal or a logout does not stop it), its output in
 * the run's `controller.log`. This process waits until the controller has its run directory, says
 * where it is and how to follow and stop it, and exits; a controller that fails before (a bad task
 * file, a run another controller holds) has its message said here, with its exit code.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Errors } from "@trex/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as RunDir from "../RunDir.ts"

/** Set in the detached controller's environment: where its output goes until it has its run directory. */
const LOG_ENV = "TREX_DETACHED_LOG"

/** A run's controller output when it runs detached. */
export const logFile = (runDir: string): string => path.join(runDir, "controller.log")

/** Whether this process is a detached controller (it then runs the command itself). */
export const isDetachedController = (): boolean => process.env[LOG_ENV] !== undefined && typeof process.send === "function"

/** What the controller says the launcher once it has its run directory. */
interface Started {
  readonly runDir: string
}

/**
 * In the launcher: start this very command line again, detached, its output appended to `log`, and
 * wait until it has its run directory (then return it, and the controller's pid) or has exited
 * (then fail with what it printed, and its exit code).
 */
export const launch = (log: string): Effect.Effect<{ readonly runDir: string; readonly pid: number; readonly log: string }, Errors.InvalidInput | Exited> =>
  Effect.gen(function*() {
    const opened = yield* Effect.try({
      try: () => {
        RunDir.makeFolders(path.dirname(log))
        const fd = fs.openSync(log, "a")
        return { fd, from: fs.fstatSync(fd).size }
      },
      catch: (e) => new Errors.InvalidInput({ source: log, message: `cannot write the detached controller's output to ${log}: ${(e as Error).message}` })
    })
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      detached: true,
      stdio: ["ignore", opened.fd, opened.fd, "ipc"],
      env: { ...process.env, [LOG_ENV]: log }
    })
    fs.closeSync(opened.fd)
    const said = yield* Effect.callback<{ readonly _tag: "Started"; readonly runDir: string } | { readonly _tag: "Exited"; readonly code: number }>((resume) => {
      child.once("message", (m) => resume(Effect.succeed({ _tag: "Started", runDir: (m as Started).runDir })))
      child.once("exit", (code, signal) => resume(Effect.succeed({ _tag: "Exited", code: code ?? (signal !== null ? 1 : 0) })))
      child.once("error", (e) => resume(Effect.succeed({ _tag: "Exited", code: (process.stderr.write(`trex: cannot start the controller: ${e.message}\n`), 1) })))
    }).pipe(
      // Ctrl-C while waiting stops the wait, not the controller (it has no terminal to get it from)
      Effect.onInterrupt(() =>
        Effect.sync(() =>
          process.stderr.write(
            `trex: stopped waiting; the controller, process ${child.pid}, goes on: its output is in ${log} ` +
              `(moved to <run-dir>/controller.log once the run has started; \`trex stop <run-dir>\` stops it)\n`
          )
        )
      )
    )
    if (said._tag === "Exited") {
      const printed = yield* Effect.sync(() => {
        // what it appended (the log of a resumed run holds its earlier sessions' output before it)
        const text = fs.readFileSync(log).subarray(opened.from).toString("utf8")
        // a log of a new run that never got a directory is this launch's alone
        if (opened.from === 0 && path.basename(log).startsWith(".trex-detached-")) fs.rmSync(log, { force: true })
        return text
      })
      return yield* new Exited({ code: said.code, printed })
    }
    child.disconnect()
    child.unref()
    return { runDir: said.runDir, pid: child.pid!, log: logFile(said.runDir) }
  })

/** The detached controller exited before it had a run directory: what it printed, and its exit code. */
export class Exited extends Schema.TaggedError<Exited>()("DetachedExited", {
  code: Schema.Number,
  printed: Schema.String
}) {}

/** A new run's output, until its controller has a run directory: beside the runs in `out`. */
export const pendingLog = (out: string): string => path.join(path.resolve(out), `.trex-detached-${process.pid}-${Date.now()}.log`)

/**
 * In a detached controller, once it has its run directory: its output so far moved there (a new
 * run's), and the launcher told. Nothing in any other process.
 */
export const announce = (runDir: string): void => {
  const log = process.env[LOG_ENV]
  if (log === undefined || typeof process.send !== "function") return
  delete process.env[LOG_ENV]
  const target = logFile(runDir)
  if (path.resolve(log) !== path.resolve(target)) {
    try {
      // the output's file descriptor follows the file
      fs.renameSync(log, target)
    } catch {
      // left where it is: it still has the output
    }
  }
  // a launcher stopped meanwhile (Ctrl-C while it waited) has closed the channel: the run goes on regardless
  if (!process.connected) return
  process.send({ runDir } satisfies Started, undefined, {}, () => {
    if (process.connected) process.disconnect()
  })
}
