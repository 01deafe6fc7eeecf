/**
 * Secret values, and taking them out of what a job printed: the one rule shared by the executors
 * (before the journal or a model sees a job's lines) and by the commands that show a job's own logs
 * (`trex status --node`, `trex report --html`).
 *
 * The secrets of a job are those its spec's `env` holds as `Redacted` (a task's `recipe.secretEnv`),
 * and the controller's own variables named like one (`HF_TOKEN`, `ANTHROPIC_API_KEY`,
 * `AWS_SECRET_ACCESS_KEY`), which a job may inherit (the local backend passes `HF_*` through). A value
 * shorter than {@link MIN_LENGTH} is left: it would blot out common words. A value the job printed
 * transformed (base64, say) is not found.
 *
 * @since 0.1.0
 */
import * as Redacted from "effect/Redacted"

/**
 * The names of variables taken for secrets: `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*PASSWD*`,
 * `*CREDENTIAL*`, `*_KEY`, `*_API_KEY`.
 * @since 0.1.0 @category constants
 */
export const NAMED_LIKE: RegExp = /TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|(^|_)(API_?)?KEY$/i

/** Values shorter than this are not taken out. @since 0.1.0 @category constants */
export const MIN_LENGTH = 8

/** A secret: its variable's name and its value. @since 0.1.0 @category models */
export type Secret = readonly [name: string, value: string]

/**
 * The secrets to take out of a job's lines: the `Redacted` values of `env` (plain strings there are
 * not secrets), then the variables of `environment` (the controller's own, `process.env`) named like
 * one ({@link NAMED_LIKE}). Values shorter than {@link MIN_LENGTH} are left out; the rest come longest
 * first, so that a value holding another is replaced whole.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { Secrets } from "@trex/core"
 * const secrets = Secrets.of({ HUB: Redacted.make("hub_0123456789") }, { HF_TOKEN: "hf_abcdefghij", HOME: "/home/me" })
 * // [["HUB", "hub_0123456789"], ["HF_TOKEN", "hf_abcdefghij"]]
 * ```
 * @since 0.1.0 @category constructors
 */
export const of = (
  env: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined,
  environment: Readonly<Record<string, string | undefined>>
): ReadonlyArray<Secret> =>
  [
    ...Object.entries(env ?? {}).flatMap(([k, v]): Array<Secret> => (typeof v === "string" ? [] : [[k, Redacted.value(v)]])),
    ...Object.entries(environment).flatMap(([k, v]): Array<Secret> => (v !== undefined && NAMED_LIKE.test(k) ? [[k, v]] : []))
  ].filter(([, v]) => v.length >= MIN_LENGTH).sort((a, b) => b[1].length - a[1].length)

/**
 * A function that replaces, in a text, every secret's value by `<secret NAME>`.
 *
 * @example
 * ```ts
 * import { Secrets } from "@trex/core"
 * const scrub = Secrets.scrubber([["HF_TOKEN", "hf_abcdefghij"]])
 * scrub("login hf_abcdefghij") // "login <secret HF_TOKEN>"
 * ```
 * @since 0.1.0 @category functions
 */
export const scrubber = (secrets: ReadonlyArray<Secret>) => (text: string): string =>
  secrets.reduce((t, [name, value]) => (t.includes(value) ? t.replaceAll(value, `<secret ${name}>`) : t), text)
