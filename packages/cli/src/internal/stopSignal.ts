/**
 * What the first Ctrl-C (SIGINT) or SIGTERM does. By default the program is interrupted. While a
 * run is in progress it registers a handler instead: the run stops starting trials and lets the
 * running ones finish (their results are journaled), and only a second signal interrupts it
 * (which cancels the running trials: they would run again on resume).
 */
import * as Effect from "effect/Effect"
import { constants } from "node:os"

/** The exit code of a process a signal stopped: 128 + its number, as a shell reports it (130 for SIGINT, 143 for SIGTERM, 141 for SIGPIPE). */
export const exitCodeOf = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 2)

let handler: ((signal: NodeJS.Signals) => void) | undefined

/** Handle the first stop signal with `onStop` for the rest of the scope. */
export const onFirstSignal = (onStop: (signal: NodeJS.Signals) => void) =>
  Effect.acquireRelease(Effect.sync(() => void (handler = onStop)), () => Effect.sync(() => void (handler = undefined)))

/** Called by the program's signal listener on the first signal: true when a handler took it (do not interrupt). */
export const firstSignal = (signal: NodeJS.Signals): boolean => {
  const h = handler
  if (h === undefined) return false
  h(signal)
  return true
}
