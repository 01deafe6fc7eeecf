/**
 * How `trex` ends: the exit status and the lines on stderr for each error a command can fail with, in one place for
 * the program (`main.ts`) and for the tests that run the CLI in their own process (test/support/cli.ts), so that the
 * two cannot say different things.
 */
import type { Errors } from "@trex/core"
import type { Explorer } from "@trex/mcts"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import { CliError, CliOutput, Command } from "effect/cli"
import { exitCodeOf } from "./stopSignal.ts"
import * as Untrusted from "./untrusted.ts"

/** Every error a `trex` command fails with (its type is checked against the command's in `program`). */
export type CommandError = Errors.BackendError | CliError.CliError | Explorer.Error

/**
 * What `trex` does with a command's error: its exit status (2 for bad input, a mistyped flag or a run in use, 1 for
 * the rest) and its message, written as `trex: <message>` (none for a mistyped flag: the CLI framework wrote it).
 */
export const failureOf = (error: CommandError): { readonly code: 1 | 2; readonly message: string | undefined } => {
  if (CliError.isCliError(error)) return { code: 2, message: undefined }
  switch (error._tag) {
    case "InvalidInput":
      return { code: 2, message: error.message }
    case "JournalError":
      // most journal errors name the journal already ("journal <file>: entry 7 ...", "cannot read journal <file>")
      return { code: error.reason === "Locked" ? 2 : 1, message: /\bjournal\b/.test(error.message) ? error.message : `journal: ${error.message}` }
    case "BackendError":
      return { code: 1, message: `backend ${error.backend} ${error.operation}: ${error.message}` }
    case "PolicyError":
      return { code: 1, message: `search policy: ${error.message}` }
    case "SetupFailure":
      return { code: 1, message: error.message }
  }
}

/**
 * A flag's value that is no number at all (`--concurrency two`) fails the framework's parse with "Expected a string
 * representing a finite number", whatever the flag takes: said instead as what the flag takes, an integer (as
 * `--concurrency 2.5` is told) or a number, the type its help shows.
 */
const expectedOf = (flags: ReadonlyArray<{ readonly name: string; readonly type: string }>, error: CliError.CliError): CliError.CliError => {
  if (error._tag !== "InvalidValue" || error.kind !== "flag" || !/a string representing a finite number/.test(error.expected)) return error
  const type = flags.find((f) => f.name === error.option)?.type
  if (type !== "integer" && type !== "number") return error
  return new CliError.InvalidValue({ option: error.option, value: error.value, expected: type === "integer" ? "Expected an integer" : "Expected a number", kind: "flag" })
}

// A mistyped flag or value: the error first, on stderr, then the usage line (not the whole help page).
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.gen(function*() {
        const formatter = yield* CliOutput.Formatter
        const flags = [...event.helpDoc.flags, ...(event.helpDoc.globalFlags ?? [])]
        yield* Console.error(formatter.formatErrors(event.errors.map((e) => expectedOf(flags, e))))
        yield* Console.error(`\nusage: ${event.helpDoc.usage}\n(${event.commandPath.join(" ")} --help lists every flag)`)
      })
      : CliOutput.defaultPresenter.present(event)
})

/**
 * `trex` as the program runs it, on `args` (else on the process's arguments): the command's error reported as
 * {@link failureOf} says (the message on stderr, the exit status in `process.exitCode`), a mistyped flag presented
 * with the usage line, warnings on stderr.
 */
export const program = <const Name extends string, Input, ContextInput, R>(
  command: Command.Command<Name, Input, ContextInput, Errors.BackendError | Explorer.Error, R>,
  args?: ReadonlyArray<string>
) =>
  (args === undefined ? Command.run(command, { version: "0.1.0" }) : Command.runWith(command, { version: "0.1.0" })(args)).pipe(
    Effect.catch((e) =>
      Effect.sync(() => {
        const { code, message } = failureOf(e)
        // a message may carry what a job, a backend or a model wrote (a log line, a command's stderr)
        if (message !== undefined) process.stderr.write(`trex: ${Untrusted.lines(message)}\n`)
        process.exitCode = code
      })
    ),
    Effect.provide(presenter),
    Effect.provide(NodeServices.layer),
    // warnings and errors go to stderr: stdout carries the run's progress and results (and may be piped)
    Effect.provideService(Logger.LogToStderr, true)
  )

/**
 * The exit status of a program that ended with `exit`, and what it writes to stderr then: the status its command set
 * (`process.exitCode`) when it succeeded; 128 + the signal's number when a signal (`interruptedBy`, else SIGINT)
 * interrupted it; 1 and the error with its trace for an error no command expects (a bug).
 */
export const ending = (exit: Exit.Exit<unknown, unknown>, interruptedBy: NodeJS.Signals | undefined): { readonly code: number; readonly stderr: string } => {
  if (Exit.isSuccess(exit)) return { code: typeof process.exitCode === "number" ? process.exitCode : 0, stderr: "" }
  if (Cause.hasInterruptsOnly(exit.cause)) return { code: exitCodeOf(interruptedBy ?? "SIGINT"), stderr: "" }
  return { code: 1, stderr: `trex: unexpected error\n${Cause.pretty(exit.cause)}\n` }
}
