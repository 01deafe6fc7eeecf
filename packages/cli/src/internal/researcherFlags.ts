/**
 * `--researcher-retries` and `--researcher-retry-delay`, of `trex run` and (for its session) `trex resume`: how the
 * explorer asks again a researcher that failed retryably (`Explorer.Options.researcherRetries`, `researcherRetryDelay`).
 */
import { Errors, Researcher } from "@trex/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Flag } from "effect/cli"

/**
 * The end of a flag's description: ` (default <value>; <note>)`, or only ` (<note>)` when `what` says the default
 * itself (`trex resume`'s "(default: the run's)"), so that no flag shows two defaults.
 */
export const defaultClause = (what: string, value: string, note?: string): string =>
  what.includes("(default:") ? (note === undefined ? "" : ` (${note})`) : ` (default ${value}${note === undefined ? "" : `; ${note}`})`

/** The flags, `what` closing their descriptions (", for this session (default: the run's)"). */
export const flags = (what: string) => ({
  researcherRetries: Flag.Int("researcher-retries").pipe(
    Flag.optional,
    Flag.withDescription(
      `times a researcher that failed retryably (its model down or overloaded, an answer that did not decode) is asked again before the run stops${what}${defaultClause(what, "3", "0: none")}`
    )
  ),
  researcherRetryDelay: Flag.Finite("researcher-retry-delay").pipe(
    Flag.optional,
    Flag.withDescription(`seconds: the first wait before a failed researcher is asked again, doubled each time, at most 60 (or the first)${what}${defaultClause(what, "2")}`)
  )
})

/** The flags, checked (each named, with what it takes), as `Trex.Options`: those given. */
export const of = (given: { readonly researcherRetries: Option.Option<number>; readonly researcherRetryDelay: Option.Option<number> }) =>
  Effect.gen(function*() {
    const retries = Option.getOrUndefined(given.researcherRetries)
    if (retries !== undefined && retries < 0) {
      return yield* new Errors.InvalidInput({
        source: "--researcher-retries",
        message: `--researcher-retries must be 0 or more, got ${retries}: the times a researcher that failed retryably is asked again before the run stops, e.g. --researcher-retries 5 (0: none)`
      })
    }
    const delay = Option.getOrUndefined(given.researcherRetryDelay)
    if (delay !== undefined && Researcher.retryDelayMillis(delay * 1000) === undefined) {
      // the explorer's rule, and its words (Explorer.Options.researcherRetryDelay), in seconds
      return yield* new Errors.InvalidInput({
        source: "--researcher-retry-delay",
        message: Researcher.retryDelayIssue("--researcher-retry-delay", delay, "seconds", "--researcher-retry-delay 10")
      })
    }
    return {
      ...(retries !== undefined ? { researcherRetries: retries } : {}),
      ...(delay !== undefined ? { researcherRetryDelaySeconds: delay } : {})
    }
  })
