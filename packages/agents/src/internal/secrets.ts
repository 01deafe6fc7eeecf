/**
 * Secret values taken out of what jobs print, before a model, the journal or a report sees it.
 */
import { Redacted } from "effect"

/** Names of the controller's variables that hold secrets (`HF_TOKEN`, `ANTHROPIC_API_KEY`, `AWS_SECRET_ACCESS_KEY`...). */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|(^|_)(API_?)?KEY$/i

/**
 * The values to take out of what a job prints: the secrets of `env`, and the controller's own
 * variables named like secrets, which a job may inherit (the local backend passes `HF_*` through,
 * `HF_TOKEN` among them). Longest first, so that a value holding another is replaced whole; values
 * under 8 characters are left (they would blot out common words).
 */
export const secretsOf = (env: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined): ReadonlyArray<readonly [string, string]> =>
  [
    ...Object.entries(env ?? {}).flatMap(([k, v]) => (typeof v === "string" ? [] : [[k, Redacted.value(v)] as const])),
    ...Object.entries(process.env).flatMap(([k, v]) => (v !== undefined && SECRET_NAME.test(k) ? [[k, v] as const] : []))
  ].filter(([, v]) => v.length >= 8).sort((a, b) => b[1].length - a[1].length)

/** A function that replaces, in a text, every secret's value by `<secret NAME>`. */
export const scrubber = (secrets: ReadonlyArray<readonly [string, string]>) => (text: string): string =>
  secrets.reduce((t, [name, value]) => (t.includes(value) ? t.replaceAll(value, `<secret ${name}>`) : t), text)
