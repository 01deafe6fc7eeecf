/**
 * Whether a constructor refuses a mistyped option as `OptionSpec` words it: for the authors of
 * policies, researchers and backends whose constructors check their options with `OptionSpec`
 * (`OptionSpec.orThrow`), and for our own. Framework-agnostic: each check returns what is wrong,
 * or `undefined`.
 *
 * @since 0.1.0
 */
import { InvalidInput } from "../Errors.ts"

/**
 * What is wrong with how `make` (named `name`, as its `OptionSpec.orThrow` call names it) refused
 * `options`, or `undefined` when it threw an `InvalidInput` from `"<name> options"` whose message
 * begins `invalid <name> options:` and holds every one of `lines`.
 *
 * @example
 * ```ts
 * import { OptionSpec } from "@trex/core"
 * import { OptionsConformance } from "@trex/core/testing"
 * const make = (options: { readonly rate?: number }) => {
 *   OptionSpec.orThrow("Thing.make", { rate: OptionSpec.probability("how often") }, options)
 *   return options
 * }
 * OptionsConformance.refusal("Thing.make", make, { rate: 2 }, ["rate: expected a number from 0 to 1"]) // undefined
 * ```
 * @since 0.1.0 @category checks
 */
export const refusal = <O>(name: string, make: (options: O) => unknown, options: unknown, lines: ReadonlyArray<string>): string | undefined => {
  let thrown: unknown
  try {
    make(options as O)
  } catch (e) {
    thrown = e
  }
  if (thrown === undefined) return `${name} accepted the options`
  if (!(thrown instanceof InvalidInput)) return `${name} threw ${String(thrown)}, not an InvalidInput`
  if (thrown.source !== `${name} options`) return `the InvalidInput's source is ${JSON.stringify(thrown.source)}, not "${name} options"`
  if (!thrown.message.startsWith(`invalid ${name} options:\n`)) return `the message does not begin "invalid ${name} options:": ${thrown.message}`
  const missing = lines.filter((l) => !thrown.message.includes(l))
  return missing.length === 0 ? undefined : `the message lacks ${missing.map((l) => JSON.stringify(l)).join(", ")}:\n${thrown.message}`
}
