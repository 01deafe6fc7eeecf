/**
 * The `trex` program, started by `bin.ts` once it has checked the Node.js version.
 *
 * @since 0.1.0
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Console, Effect, Exit, Logger, Runtime } from "effect"
import { CliOutput, Command } from "effect/cli"
import { command } from "./Cli.ts"
import { exitCodeOf, firstSignal } from "./internal/stopSignal.ts"
import * as Untrusted from "./internal/untrusted.ts"

// a message may carry what a job, a backend or a model wrote (a log line, a command's stderr)
const fail = (code: number, message: string) =>
  Effect.sync(() => {
    process.stderr.write(`trex: ${Untrusted.lines(message)}\n`)
    process.exitCode = code
  })

// A mistyped flag or value: the error first, on stderr, then the usage line (not the whole help page).
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.gen(function*() {
        const formatter = yield* CliOutput.Formatter
        yield* Console.error(formatter.formatErrors(event.errors))
        yield* Console.error(`\nusage: ${event.helpDoc.usage}\n(${event.commandPath.join(" ")} --help lists every flag)`)
      })
      : CliOutput.defaultPresenter.present(event)
})

const program = Command.run(command, { version: "0.1.0" }).pipe(
  Effect.catchTags({
    InvalidInput: (e) => fail(2, e.message),
    // most journal errors name the journal already ("journal <file>: entry 7 ...", "cannot read journal <file>")
    JournalError: (e) => fail(e.reason === "Locked" ? 2 : 1, /\bjournal\b/.test(e.message) ? e.message : `journal: ${e.message}`),
    BackendError: (e) => fail(1, `backend ${e.backend} ${e.operation}: ${e.message}`),
    PolicyError: (e) => fail(1, `search policy: ${e.message}`),
    SetupFailure: (e) => fail(1, e.message)
  }),
  // Parse errors are printed by the CLI framework itself; exit 2 as for any bad input.
  Effect.catchIf((e) => typeof e === "object" && e !== null && "_tag" in e, () => Effect.sync(() => void (process.exitCode = 2))),
  Effect.provide(presenter),
  Effect.provide(NodeServices.layer),
  // warnings and errors go to stderr: stdout carries the run's progress and results (and may be piped)
  Effect.provideService(Logger.LogToStderr, true)
)

/**
 * `NodeRuntime.runMain`, except for the first SIGINT, SIGTERM or SIGHUP during a run: the run drains (see
 * `internal/stopSignal.ts`) instead of being interrupted; a second signal interrupts.
 */
// A reader of the output that went away (`trex run | head`, or of stderr too with `2>&1 | head`),
// or a terminal that was closed (EIO; the SIGHUP that comes with it is handled as a first SIGTERM
// too): nothing more is written there, and a run in progress stops gently, as on a first SIGTERM (no
// trial is lost; `trex resume` goes on). Unhandled, the error on stderr would kill the controller.
let outputGone = false
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE" && e.code !== "EIO" && e.code !== "ERR_STREAM_DESTROYED") throw e
    if (outputGone) return
    outputGone = true
    firstSignal("SIGPIPE")
  })
}

let interruptedBy: NodeJS.Signals | undefined
const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  let signalled = false
  /** The first signal was taken by a run (it drains) rather than interrupting. */
  let handling = false
  const onSignal = (signal: NodeJS.Signals) => {
    // a hangup never cancels running trials: a closed terminal sends it to the run's process group
    // and its shell sends it again, and a hangup after a Ctrl-C must not turn the drain into a cancel
    if (signal === "SIGHUP" && signalled && handling) return
    const first = !signalled
    signalled = true
    interruptedBy = signal
    if (first && firstSignal(signal)) {
      handling = true
      return
    }
    fiber.interruptUnsafe(fiber.id)
  }
  fiber.addObserver((exit) => {
    process.removeListener("SIGINT", onSignal)
    process.removeListener("SIGTERM", onSignal)
    process.removeListener("SIGHUP", onSignal)
    teardown(exit, (code) => {
      if (signalled || code !== 0) process.exit(code)
    })
  })
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  // a closed terminal (or a logout) ends a run as a first SIGTERM does: its running trials finish and are kept
  process.on("SIGHUP", onSignal)
})

runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
      process.stderr.write(`trex: unexpected error\n${Cause.pretty(exit.cause)}\n`)
      onExit(1)
    } else if (Exit.isFailure(exit)) onExit(exitCodeOf(interruptedBy ?? "SIGINT"))
    else onExit(typeof process.exitCode === "number" ? process.exitCode : 0)
  }
})
