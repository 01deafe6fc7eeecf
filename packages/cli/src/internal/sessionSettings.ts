/**
 * The settings a resume may give for its session (`trex resume --model-timeout ...`), and the check of those a run
 * recorded when it started: a resume takes them as it reads them, so one outside what `trex run` takes now (a
 * `modelTimeoutSeconds` longer than a model's timer can wait, journaled before that was bounded, or an edited journal)
 * would start a session whose model refuses every call; it is refused before anything runs, naming the fix.
 */
import { Errors, OptionSpec } from "@trex/core"
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
  given: Partial<Record<keyof typeof FLAGS, unknown>>,
  rules: OptionSpec.Spec
): Errors.InvalidInput | undefined => {
  for (const [key, [flag, example]] of Object.entries(FLAGS)) {
    const value = recorded[key as keyof typeof FLAGS]
    if (value === undefined || given[key as keyof typeof FLAGS] !== undefined) continue
    const [issue] = rules[key]?.issues(value, key) ?? []
    if (issue === undefined) continue
    return new Errors.InvalidInput({
      source: runDir,
      message: `${runDir}: the run's recorded ${key} is ${OptionSpec.show(value)}, which this trex does not take ` +
        `(${issue.replace(/^\w+: /, "").replace(/, got [^,]*$/, "")}; a journal of an older trex, or an edited one): ` +
        `resume with ${flag} <value> (Trex.start: ${key}) to give this session another, e.g. trex resume ${runDir} ${flag} ${example}`
    })
  }
  return undefined
}
