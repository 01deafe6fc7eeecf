/**
 * Waiting out a scheduler's controller that does not answer (slurmctld, Grid Engine's qmaster):
 * the batch backends' submit and list try again rather than fail, for a bounded time.
 */
import { Backend } from "@trex/core"
import type { Errors } from "@trex/core"
import { Effect, Result } from "effect"

/** Seconds since `since` (epoch ms), as `12 s`. */
export const waited = (since: number): string => `${Math.round((Date.now() - since) / 1000)} s`

/**
 * Run `effect` again every `pollMs` while it fails with an error `retryIf` accepts (the controller
 * not answering), for up to `waitMs`; then fail with `giveUp` (which names what to check). Any other
 * error fails at once. The outage is told once, when it begins: `warning` is logged, or `onDown` run
 * (a watch tells its consumer, in the job's events).
 */
export const waitWhileDown = <A>(options: {
  readonly effect: Effect.Effect<A, Errors.BackendError>
  readonly retryIf: (e: Errors.BackendError) => boolean
  readonly pollMs: number
  readonly waitMs: number
  readonly giveUp: (e: Errors.BackendError, waited: string) => Errors.BackendError
} & (
  | { readonly warning: (e: Errors.BackendError) => string }
  | { readonly onDown: (e: Errors.BackendError, since: number) => Effect.Effect<void> }
)): Effect.Effect<A, Errors.BackendError> =>
  Effect.gen(function*() {
    const since = Date.now()
    let told = false
    while (true) {
      const tried = yield* Effect.result(options.effect)
      if (Result.isSuccess(tried)) return tried.success
      const e = tried.failure
      if (!options.retryIf(e)) return yield* e
      if (Date.now() - since >= options.waitMs) return yield* options.giveUp(e, waited(since))
      if (!told) {
        told = true
        yield* "onDown" in options ? options.onDown(e, since) : Effect.logWarning(options.warning(e))
      }
      yield* Effect.sleep(options.pollMs)
    }
  })

/**
 * A watch's poll of a scheduler (`who`) that may not answer: the job is left be and `effect` run
 * again every `pollMs`, for up to `waitMs` (the setting `setting`), the outage told once to the
 * watch's consumer (`Backend.unreachable`: the run journals it, `trex status` shows it) in the state
 * the job last showed (a queued job waits on); then `giveUp`. `recovered`: it did not answer, and
 * does now (the state it gives is then shown again, ending the outage).
 */
export const pollThroughOutage = <A>(options: {
  readonly effect: Effect.Effect<A, Errors.BackendError>
  readonly retryIf: (e: Errors.BackendError) => boolean
  readonly pollMs: number
  readonly waitMs: number
  readonly setting: string
  readonly who: string
  readonly state: () => "Pending" | "Running"
  readonly emit: (e: Backend.JobEvent) => Effect.Effect<unknown>
  readonly giveUp: (waited: string) => Errors.BackendError
}): Effect.Effect<{ readonly value: A; readonly recovered: boolean }, Errors.BackendError> => {
  let recovered = false
  return waitWhileDown({
    effect: options.effect,
    retryIf: options.retryIf,
    pollMs: options.pollMs,
    waitMs: options.waitMs,
    onDown: (e, since) => {
      recovered = true
      return Effect.asVoid(options.emit(Backend.unreachable({
        state: options.state(),
        who: options.who,
        since,
        cause: e.message,
        meanwhile: `the job is left be and its state polled again every ${options.pollMs / 1000} s for up to ${options.waitMs / 1000} s (${options.setting})`
      })))
    },
    giveUp: (_, waited) => options.giveUp(waited)
  }).pipe(Effect.map((value) => ({ value, recovered })))
}
