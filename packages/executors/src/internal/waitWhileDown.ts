/**
 * Waiting out a scheduler's controller that does not answer (slurmctld, Grid Engine's qmaster):
 * the batch backends' submit and list try again rather than fail, for a bounded time.
 */
import type { Errors } from "@trex/core"
import { Effect, Result } from "effect"

/** Seconds since `since` (epoch ms), as `12 s`. */
export const waited = (since: number): string => `${Math.round((Date.now() - since) / 1000)} s`

/**
 * Run `effect` again every `pollMs` while it fails with an error `retryIf` accepts (the controller
 * not answering), logging `warning` once, for up to `waitMs`; then fail with `giveUp` (which names
 * what to check). Any other error fails at once.
 */
export const waitWhileDown = <A>(options: {
  readonly effect: Effect.Effect<A, Errors.BackendError>
  readonly retryIf: (e: Errors.BackendError) => boolean
  readonly pollMs: number
  readonly waitMs: number
  readonly warning: (e: Errors.BackendError) => string
  readonly giveUp: (e: Errors.BackendError, waited: string) => Errors.BackendError
}): Effect.Effect<A, Errors.BackendError> =>
  Effect.gen(function*() {
    const since = Date.now()
    let warned = false
    while (true) {
      const tried = yield* Effect.result(options.effect)
      if (Result.isSuccess(tried)) return tried.success
      const e = tried.failure
      if (!options.retryIf(e)) return yield* e
      if (Date.now() - since >= options.waitMs) return yield* options.giveUp(e, waited(since))
      if (!warned) {
        warned = true
        yield* Effect.logWarning(options.warning(e))
      }
      yield* Effect.sleep(options.pollMs)
    }
  })
