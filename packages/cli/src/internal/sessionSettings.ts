/**
 * The settings a resume may give for its session (`trex resume --model-timeout ...`), and the check of those a run
 * recorded when it started: a resume takes them as it reads them, so one outside what `trex run` takes now (a
 * `modelTimeoutSeconds` longer than a model's timer can wait, journaled before that was bounded, or an edited journal)
 * would start a session whose model refuses every call; it is refused before anything runs, naming the fix. One given
 * in its stead becomes the run's (journaled in the resume's `RunResumed`), so the next resume need not give it again.
 */
import { Errors, type JournalEvent, OptionSpec } from "@trex/core"
import type * as Settings from "../Settings.ts"

/** Each setting a resume may give for its session: its flag of `trex resume`, and a value to show (its default). */
export const FLAGS = {
  failFast: ["--fail-fast", 3],
  maxRetryAfterSeconds: ["--max-retry-after", 60],
  modelMaxRetries: ["--model-max-retries", 4],
  modelRetryDelaySeconds: ["--model-retry-delay", 1],
  modelMaxRetryDelaySeconds: ["--model-max-retry-delay", 30],
  modelTimeoutSeconds: ["--model-timeout", 600],
  researcherRetries: ["--researcher-retries", 3],
  researcherRetryDelaySeconds: ["--researcher-retry-delay", 2]
} as const satisfies { readonly [K in keyof Settings.Settings]?: readonly [string, number] }

/**
 * The first of a run's recorded session settings (those {@link FLAGS} names) that the session takes (`given` does not
 * replace it) and `rules` (the options' own checks, with the flags' limits) refuse: an `InvalidInput` naming the run,
 * the setting, its value, what it takes, and the flag that gives the session another; `undefined` when all are sound.
 */
export const recordedIssue = (
  runDir: string,
  recorded: Settings.Settings,
  given: Given,
  rules: OptionSpec.Spec
): Errors.InvalidInput | undefined => {
  for (const [key, [flag, example]] of Object.entries(FLAGS)) {
    if (given[key as keyof typeof FLAGS] !== undefined) continue
    const issue = issueOf(recorded, key, rules)
    if (issue === undefined) continue
    return new Errors.InvalidInput({
      source: runDir,
      message: `${runDir}: the run's recorded ${key} is ${OptionSpec.show(recorded[key as keyof typeof FLAGS])}, which this trex does not take ` +
        `(${issue.replace(/^\w+: /, "").replace(/, got [^,]*$/, "")}; a journal of an older trex, or an edited one): ` +
        `resume with ${flag} <value> (Trex.start: ${key}) to give the run another from then on, e.g. trex resume ${runDir} ${flag} ${example}`
    })
  }
  return undefined
}

/** The session settings a resume gives (`Trex.Options`' keys of {@link FLAGS}). */
type Given = Partial<Record<keyof typeof FLAGS, unknown>>

/** What `rules` say of the recorded `key`, when it is set and they refuse it. */
const issueOf = (recorded: Settings.Settings, key: string, rules: OptionSpec.Spec): string | undefined => {
  const value = recorded[key as keyof typeof FLAGS]
  return value === undefined ? undefined : rules[key]?.issues(value, key)[0]
}

/**
 * The settings a resume records as the run's from then on (`RunResumed.settings`): those given for ones it recorded
 * that `rules` refuse. Others given stay the session's: a `--fail-fast 0` or a longer `--max-retry-after` given to get
 * past one stop is not kept.
 */
export const replacing = (recorded: Settings.Settings, given: Given, rules: OptionSpec.Spec): Record<string, number> =>
  Object.fromEntries(Object.keys(FLAGS).flatMap((key) => {
    const value = given[key as keyof typeof FLAGS]
    return typeof value === "number" && issueOf(recorded, key, rules) !== undefined ? [[key, value]] : []
  }))

/**
 * The run's settings as recorded: `RunStarted.options`, with those each resume replaced since (`RunResumed.settings`),
 * in order.
 */
export const recordedOptions = (
  started: JournalEvent.Of<"RunStarted">,
  entries: ReadonlyArray<{ readonly event: JournalEvent.JournalEvent }>
): Record<string, unknown> =>
  entries.reduce<Record<string, unknown>>(
    (options, { event }) => event._tag === "RunResumed" && event.settings !== undefined ? { ...options, ...event.settings } : options,
    started.options
  )
