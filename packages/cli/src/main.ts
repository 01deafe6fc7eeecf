/**
 * The `trex` program, started by `bin.ts` once it has checked the Node.js version.
 *
 * @since 0.1.0
 */
import * as Runtime from "effect/Runtime"
import { command } from "./Cli.ts"
import { ending, program } from "./internal/ending.ts"
import { firstSignal } from "./internal/stopSignal.ts"

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

// the exit status and error messages are internal/ending.ts's, shared with the tests that run the CLI in their process
runMain(program(command), {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    const { code, stderr } = ending(exit, interruptedBy)
    if (stderr !== "") process.stderr.write(stderr)
    onExit(code)
  }
})
